//! The event-stream parser (WHATWG HTML, "Server-sent events", §9.2.6):
//! lines end with CR, LF or CRLF — a CR at the end of one chunk and an LF
//! at the start of the next are one line end; a leading UTF-8 BOM is
//! dropped; `:` starts a comment; a line without a colon is a field with an
//! empty value; one space after the colon is stripped; `data` lines are
//! joined with "\n"; a blank line dispatches the event, unless its data
//! buffer is empty; `id` without NUL sets the last event id; `retry` is
//! taken when it is all ASCII digits; other fields are ignored; an event
//! left incomplete when the stream ends is discarded.
//!
//! Why not a crate: `eventsource-stream` (0.2.3, the usual choice) has one
//! entry point, `Eventsource::eventsource()`, that takes no limits: a
//! server that sends an endless line, or endless `data:` lines without a
//! blank one, makes its buffers grow until the deadline. The probe needs a
//! cap that fails at once (SPEC 10), and a push parser it can feed the
//! hop's body chunks directly; this one is ~150 lines, with unit tests for
//! each corner case above and property tests (any chunking, any line end,
//! with or without BOM, gives the same events; arbitrary bytes stay under
//! the cap).

use std::fmt;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event` field, or `message` when none was given.
    pub event_type: String,
    pub data: String,
    /// The last event id at dispatch (it persists across events).
    pub id: String,
    /// The last valid `retry` value seen, in milliseconds.
    pub retry: Option<u64>,
}

/// What one completed line or blank line produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Event(Event),
    /// A comment line (`:` first): a heartbeat.
    Comment,
}

/// A line or an event's data grew past the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    pub what: &'static str,
    pub limit: usize,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an event-stream {} exceeds {} bytes",
            self.what, self.limit
        )
    }
}

/// Push parser: feed it chunks as they arrive.
#[derive(Debug)]
pub struct Parser {
    line: Vec<u8>,
    /// The previous chunk ended in CR: an LF first in this one is part of
    /// that line end.
    after_cr: bool,
    /// No line has ended yet (a BOM may still be at the start).
    first_line: bool,
    data: String,
    event_type: String,
    last_id: String,
    retry: Option<u64>,
    max: usize,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Parser {
    /// A parser that holds at most `max` bytes of one line, and of one
    /// event's data.
    pub fn new(max: usize) -> Self {
        Self {
            line: Vec::new(),
            after_cr: false,
            first_line: true,
            data: String::new(),
            event_type: String::new(),
            last_id: String::new(),
            retry: None,
            max,
        }
    }

    /// Parse `chunk`, handing each comment and dispatched event to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut impl FnMut(Item)) -> Result<(), TooLarge> {
        // An empty chunk must not forget a pending CR.
        if chunk.is_empty() {
            return Ok(());
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\r' || b == b'\n') {
                None => {
                    self.push(chunk)?;
                    break;
                }
                Some(i) => {
                    self.push(&chunk[..i])?;
                    let cr = chunk[i] == b'\r';
                    chunk = &chunk[i + 1..];
                    if cr {
                        match chunk.first() {
                            Some(b'\n') => chunk = &chunk[1..],
                            Some(_) => {}
                            None => self.after_cr = true,
                        }
                    }
                    self.end_line(out)?;
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), TooLarge> {
        // The cap counts a BOM the first line may still lose.
        if self.line.len() + bytes.len() > self.max + if self.first_line { 3 } else { 0 } {
            return Err(TooLarge {
                what: "line",
                limit: self.max,
            });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, out: &mut impl FnMut(Item)) -> Result<(), TooLarge> {
        let mut line = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.first_line) && line.starts_with(BOM) {
            line.drain(..BOM.len());
        }
        let result = self.process(&line, out);
        // Keep the allocation for the next line unless it was a large one.
        line.clear();
        if line.capacity() <= 64 * 1024 {
            self.line = line;
        }
        result
    }

    fn process(&mut self, line: &[u8], out: &mut impl FnMut(Item)) -> Result<(), TooLarge> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            out(Item::Comment);
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => self.event_type = String::from_utf8_lossy(value).into_owned(),
            b"data" => {
                if self.data.len() + value.len() + 1 > self.max {
                    return Err(TooLarge {
                        what: "event's data",
                        limit: self.max,
                    });
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
            }
            b"id" if !value.contains(&0) => {
                self.last_id = String::from_utf8_lossy(value).into_owned();
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Saturate rather than refuse an absurdly long number.
                self.retry = Some(
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(u64::MAX),
                );
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut impl FnMut(Item)) {
        let event_type = std::mem::take(&mut self.event_type);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the last "\n"
        out(Item::Event(Event {
            event_type: if event_type.is_empty() {
                "message".to_string()
            } else {
                event_type
            },
            data,
            id: self.last_id.clone(),
            retry: self.retry,
        }));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Result<Vec<Item>, TooLarge> {
        let mut p = Parser::new(1 << 20);
        let mut items = Vec::new();
        for c in chunks {
            p.feed(c, &mut |i| items.push(i))?;
        }
        Ok(items)
    }

    fn events(input: &[u8]) -> Vec<(String, String)> {
        parse_chunks(&[input])
            .unwrap()
            .into_iter()
            .filter_map(|i| match i {
                Item::Event(e) => Some((e.event_type, e.data)),
                Item::Comment => None,
            })
            .collect()
    }

    fn ev(t: &str, d: &str) -> (String, String) {
        (t.to_string(), d.to_string())
    }

    #[test]
    fn data_lines_join_with_newline() {
        assert_eq!(
            events(b"data: a\ndata:b\ndata:  c\n\n"),
            vec![ev("message", "a\nb\n c")]
        );
    }

    #[test]
    fn event_type_resets_after_dispatch() {
        assert_eq!(
            events(b"event: update\ndata: 1\n\ndata: 2\n\n"),
            vec![ev("update", "1"), ev("message", "2")]
        );
    }

    #[test]
    fn empty_data_buffer_dispatches_nothing() {
        assert_eq!(events(b"event: x\n\n\n\nid: 3\n\n"), vec![]);
        // `data` with an empty value is an event with empty data.
        assert_eq!(events(b"data\n\n"), vec![ev("message", "")]);
        assert_eq!(events(b"data:\n\n"), vec![ev("message", "")]);
    }

    #[test]
    fn field_without_colon() {
        assert_eq!(events(b"data\ndata\n\n"), vec![ev("message", "\n")]);
        assert_eq!(events(b"event\ndata: x\n\n"), vec![ev("message", "x")]);
    }

    #[test]
    fn comments_are_heartbeats() {
        let items = parse_chunks(&[b": ping\n:\n\ndata: x\n\n"]).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], Item::Comment);
        assert_eq!(items[1], Item::Comment);
    }

    #[test]
    fn line_ends_cr_lf_crlf() {
        assert_eq!(
            events(b"data: a\rdata: b\r\ndata: c\n\r\n"),
            vec![ev("message", "a\nb\nc")]
        );
        // CR CR is two line ends: the second one dispatches.
        assert_eq!(events(b"data: a\r\r"), vec![ev("message", "a")]);
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_end() {
        // Were the LF another line end, the blank line would dispatch "a"
        // alone.
        let items =
            parse_chunks(&[b"data: a\r", b"", b"\ndata: b\r", b"\n\r", b"", b"\n"]).unwrap();
        assert_eq!(
            items,
            vec![Item::Event(Event {
                event_type: "message".into(),
                data: "a\nb".into(),
                id: String::new(),
                retry: None,
            })]
        );
    }

    #[test]
    fn leading_bom_is_dropped_once() {
        assert_eq!(events(b"\xEF\xBB\xBFdata: a\n\n"), vec![ev("message", "a")]);
        // Split across chunks.
        let items = parse_chunks(&[b"\xEF", b"\xBB", b"\xBFdata: a\n\n"]).unwrap();
        assert_eq!(items.len(), 1);
        // A BOM later is part of the line: the field is not `data`.
        assert_eq!(
            events(b"data: a\n\xEF\xBB\xBFdata: b\n\n"),
            vec![ev("message", "a")]
        );
        // Two BOMs: the second stays, so the field name is not `data`.
        assert_eq!(events(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\n"), vec![]);
    }

    #[test]
    fn id_and_retry() {
        let items =
            parse_chunks(&[b"id: 7\nretry: 1500\ndata: a\n\nretry: x1\nid: b\0c\ndata: b\n\n"])
                .unwrap();
        let Item::Event(a) = &items[0] else { panic!() };
        let Item::Event(b) = &items[1] else { panic!() };
        assert_eq!((a.id.as_str(), a.retry), ("7", Some(1500)));
        // An id with NUL is ignored, a non-numeric retry too.
        assert_eq!((b.id.as_str(), b.retry), ("7", Some(1500)));
    }

    #[test]
    fn unterminated_event_at_end_is_not_dispatched() {
        assert_eq!(events(b"data: a\n"), vec![]);
        assert_eq!(events(b"data: a"), vec![]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(events(b"data: \xFF\n\n"), vec![ev("message", "\u{FFFD}")]);
    }

    #[test]
    fn caps_hold() {
        let mut p = Parser::new(16);
        let mut n = 0;
        let long = [b'x'; 10];
        assert!(p.feed(&long, &mut |_| n += 1).is_ok());
        let e = p.feed(&long, &mut |_| n += 1).unwrap_err();
        assert_eq!(e.what, "line");
        assert!(p.line.len() <= 16 + 3);
        // Many short data lines: the event's data is capped.
        let mut p = Parser::new(16);
        let e = p
            .feed(b"data: 12345\ndata: 12345\ndata: 12345\n", &mut |_| {})
            .unwrap_err();
        assert_eq!(e.what, "event's data");
        // Comments of any number do not accumulate.
        let mut p = Parser::new(16);
        let flood = b": hb\n".repeat(10_000);
        let mut comments = 0;
        p.feed(&flood, &mut |_| comments += 1).unwrap();
        assert_eq!(comments, 10_000);
        assert!(p.line.capacity() < 1024);
    }

    /// A stream as a list of events, written with the given line end.
    fn render(evs: &[(Option<String>, Vec<String>)], eol: &str, comments: bool) -> String {
        let mut s = String::new();
        for (t, data) in evs {
            if comments {
                s.push_str(":hb");
                s.push_str(eol);
            }
            if let Some(t) = t {
                s.push_str(&format!("event: {t}{eol}"));
            }
            for d in data {
                s.push_str(&format!("data: {d}{eol}"));
            }
            s.push_str(eol);
        }
        s
    }

    proptest! {
        #![proptest_config(crate::net::proptest_config(256))]

        /// However the stream is cut into chunks, with any line end and a
        /// BOM or not, the same events come out.
        #[test]
        fn chunking_never_changes_the_events(
            evs in prop::collection::vec(
                (prop::option::of("[a-z]{1,6}"), prop::collection::vec("[^\r\n]{0,12}", 1..4)),
                0..6,
            ),
            eol in prop::sample::select(vec!["\n", "\r", "\r\n"]),
            bom in any::<bool>(),
            comments in any::<bool>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut text = render(&evs, eol, comments).into_bytes();
            if bom {
                text.splice(0..0, BOM.iter().copied());
            }
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(text.len() + 1)).collect();
            at.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for a in at {
                chunks.push(&text[prev..a]);
                prev = a;
            }
            chunks.push(&text[prev..]);
            let items = parse_chunks(&chunks).unwrap();
            let got: Vec<(String, String)> = items.iter().filter_map(|i| match i {
                Item::Event(e) => Some((e.event_type.clone(), e.data.clone())),
                Item::Comment => None,
            }).collect();
            // `data: x` strips one space only: the generated value keeps
            // its own leading spaces.
            let want: Vec<(String, String)> = evs.iter().map(|(t, d)| (
                t.clone().unwrap_or_else(|| "message".into()),
                d.join("\n"),
            )).collect();
            prop_assert_eq!(got, want);
            let hb = items.iter().filter(|i| **i == Item::Comment).count();
            prop_assert_eq!(hb, if comments { evs.len() } else { 0 });
        }

        /// Arbitrary bytes never panic, and the line buffer never passes
        /// the cap.
        #[test]
        fn arbitrary_bytes_stay_bounded(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16),
        ) {
            let mut p = Parser::new(32);
            for c in &chunks {
                if p.feed(c, &mut |_| {}).is_err() {
                    break;
                }
                prop_assert!(p.line.len() <= 35);
                prop_assert!(p.data.len() <= 32);
            }
        }
    }
}
