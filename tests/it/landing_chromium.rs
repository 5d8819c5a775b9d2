//! The landing page at `/` as people see it: fetched over HTTP, then
//! rendered by headless Chromium (Debian package `chromium`, installed by
//! `scripts/test`) with JavaScript disabled, plus a screenshot that must not
//! be blank.
//!
//! JavaScript is turned off through the profile (content setting
//! `javascript: 2` in `Default/Preferences`), not with
//! `--blink-settings=scriptEnabled=false`: with that flag the new headless
//! mode's `--dump-dom` and `--screenshot` produce nothing, since they run
//! script through DevTools. A control page whose script would rewrite it
//! proves that scripts really are off.
//!
//! The exporter runs three probes first: one that succeeds, one refused
//! (`connect_refused`) and one whose target carries `<script>alert(1)</script>`,
//! which must show up escaped. Every `logs?id=` link on the page must resolve.
//!
//! The screenshot is kept as `target/landing.png` (and a narrow, phone-sized
//! one as `target/landing-narrow.png`, the rendered DOM as
//! `target/landing.dom.html`) for humans to look at.
//!
//! PNG decoding is done here with `flate2` (already a dependency of the
//! crate): the decoder handles what Chromium writes (8-bit RGB or RGBA,
//! not interlaced) and rejects anything else loudly.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use http::{Response, StatusCode, header};
use regex::Regex;

use crate::common;
use crate::common::closed_addr;
use crate::common::exporter::{Exporter, probe_path};
use crate::common::http_server::{Body, TestServer, text};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;

const MODULES: [(&str, &str); 3] = [
    ("http_2xx", "http"),
    ("tcp_connect", "tcp"),
    ("ws_upgrade", "websocket"),
];

const CONFIG: &str = "\
modules:
  http_2xx:
    prober: http
    timeout: 5s
  tcp_connect:
    prober: tcp
    timeout: 5s
  ws_upgrade:
    prober: websocket
";

/// Served by the target server: its script, if it ran, would add
/// [`SCRIPT_MARK`] to the document.
const CONTROL_PAGE: &str = "<!DOCTYPE html><title>control</title><p>control page</p>\
<script>document.body.insertAdjacentHTML('beforeend', '<p>script' + 'ran</p>')</script>";
const CONTROL_MARK: &str = "<p>control page</p>";
const SCRIPT_MARK: &str = "<p>scriptran</p>";

const EVIL: &str = "<script>alert(1)</script>";
const EVIL_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

#[tokio::test]
async fn landing_page_in_headless_chromium() {
    common::installed_binary(
        CHROMIUM,
        "chromium is not installed: run scripts/test (it apt-installs chromium) or apt-get install chromium",
    );

    let server = TestServer::http(|req| match req.uri().path() {
        "/control.html" => Response::builder()
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .body(Body::from(CONTROL_PAGE))
            .expect("response"),
        _ => text(StatusCode::OK, "ok"),
    });
    let exporter = Exporter::start(CONFIG).await;
    let ok_target = server.url("/ok");
    let refused_target = closed_addr().to_string();
    let evil_target = format!("{}?q={EVIL}", server.url("/x"));
    let probes = [
        (0, ok_target.as_str(), "http_2xx", true),
        (1, refused_target.as_str(), "tcp_connect", false),
        (2, evil_target.as_str(), "http_2xx", true),
    ];
    for (_, target, module, success) in probes {
        let body = exporter.probe(target, module).await;
        let want = format!("probe_success {}", u8::from(success));
        assert!(body.contains(&want), "{module} {target}: {body}");
    }

    // 1. The page as served.
    let resp = exporter.get("/").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        resp.headers
    );
    let html = resp.body;
    check_page(&html, "served HTML", &probes);
    // Raw HTML only: the target sits in the source with escaped markup.
    assert!(
        html.contains(&format!(
            "<td class=\"target\">{}</td>",
            escape(&evil_target)
        )),
        "{html}"
    );

    // Every log link resolves.
    let ids: BTreeSet<u64> = Regex::new(r#"href="logs\?id=(\d+)""#)
        .unwrap()
        .captures_iter(&html)
        .map(|c| c[1].parse().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from([0, 1, 2]), "{html}");
    for id in &ids {
        let r = exporter.get(&format!("/logs?id={id}")).await;
        assert_eq!(r.status, 200, "logs?id={id}: {}", r.body);
        assert!(r.body.contains("Logs for the probe"), "{}", r.body);
    }

    // What the form submits (empty optional hostname, debug checked) works.
    let form = format!(
        "{}&hostname=&debug=true",
        probe_path(&[("target", &ok_target), ("module", "http_2xx")])
    );
    let r = exporter.get(&form).await;
    assert_eq!(r.status, 200, "{form}: {}", r.body);
    assert!(r.body.contains("Logs for the probe"), "{}", r.body);
    assert!(r.body.contains("probe_success 1"), "{}", r.body);
    // "Probe again" on the failed row runs the same probe with debug output.
    let again = Regex::new(r#"<a href="(probe\?[^"]*)"[^>]*>Probe again</a>"#).unwrap();
    let row = html
        .lines()
        .find(|l| l.contains("href=\"logs?id=1\""))
        .expect("row of probe 1");
    let href = again.captures(row).expect("probe again link")[1].replace("&amp;", "&");
    let r = exporter.get(&format!("/{href}")).await;
    assert_eq!(r.status, 200, "{href}: {}", r.body);
    assert!(r.body.contains("Logs for the probe"), "{}", r.body);
    assert!(r.body.contains("probe_success 0"), "{}", r.body);
    assert!(r.body.contains("connect_refused"), "{}", r.body);

    // 2. Headless Chromium: the DOM with scripting disabled, and screenshots,
    // all at once.
    let url = format!("{}/", exporter.base_url());
    let work = tempfile::Builder::new()
        .prefix("landing-chromium-")
        .tempdir()
        .expect("temp dir");
    let shot = work.path().join("landing.png");
    let narrow = work.path().join("landing-narrow.png");
    let size = format!("--window-size={WIDTH},{HEIGHT}");
    let control_url = server.url("/control.html");
    let (control, dom, wide_run, narrow_run) = std::thread::scope(|s| {
        let control = s.spawn(|| chromium(work.path(), "control", &["--dump-dom"], &control_url));
        let dom = s.spawn(|| chromium(work.path(), "dom", &["--dump-dom", &size], &url));
        let wide = s.spawn(|| {
            let arg = format!("--screenshot={}", shot.display());
            chromium(work.path(), "wide", &[&size, &arg], &url)
        });
        let narrow_run = s.spawn(|| {
            let arg = format!("--screenshot={}", narrow.display());
            chromium(
                work.path(),
                "narrow",
                &["--window-size=390,844", &arg],
                &url,
            )
        });
        (
            control.join().expect("control thread"),
            dom.join().expect("dom thread"),
            wide.join().expect("screenshot thread"),
            narrow_run.join().expect("narrow screenshot thread"),
        )
    });

    // JavaScript really is off: the control page's script did not run.
    assert!(
        control.stdout.contains(CONTROL_MARK) && !control.stdout.contains(SCRIPT_MARK),
        "JavaScript is not disabled in headless chromium:\n{}\n{}",
        control.stdout,
        control.describe()
    );

    let target_dir = target_dir();
    let _ = std::fs::write(target_dir.join("landing.dom.html"), &dom.stdout);
    assert!(
        dom.stdout.contains("</html>"),
        "no DOM from chromium --dump-dom:\n{}",
        dom.describe()
    );
    // Same checks on what the browser built, with JavaScript off.
    check_page(&dom.stdout, "DOM rendered by chromium", &probes);
    assert!(
        !dom.stdout.contains("<script"),
        "the rendered DOM has a script element:\n{}",
        dom.stdout
    );

    // 3. Screenshots.
    for (run, path, name, w, h) in [
        (&wide_run, &shot, "landing.png", WIDTH, HEIGHT),
        (&narrow_run, &narrow, "landing-narrow.png", 390, 844),
    ] {
        let png = std::fs::read(path).unwrap_or_else(|e| {
            panic!("no screenshot {}: {e}\n{}", path.display(), run.describe())
        });
        let kept = target_dir.join(name);
        let _ = std::fs::write(&kept, &png);
        let image = decode_png(&png);
        check_not_blank(&image, w, h, &kept);
    }
}

/// The checks shared by the served HTML and the DOM Chromium rendered
/// (Chromium re-serializes the document, so no whitespace or attribute
/// order assumptions beyond what both produce).
fn check_page(html: &str, what: &str, probes: &[(u64, &str, &str, bool)]) {
    let ctx = |msg: &str| format!("{what}: {msg}\n--- page ---\n{html}");
    assert!(html.contains("handshake_exporter"), "{}", ctx("no title"));
    assert!(
        html.contains(&format!("v{}", env!("CARGO_PKG_VERSION"))),
        "{}",
        ctx("no version")
    );
    assert!(
        html.contains("Configuration loaded"),
        "{}",
        ctx("no config status")
    );
    // The probe form, usable without JavaScript.
    assert!(
        html.contains("<form action=\"probe\" method=\"get\">"),
        "{}",
        ctx("no probe form")
    );
    for name in ["target", "module", "hostname", "debug"] {
        assert!(
            html.contains(&format!("name=\"{name}\"")),
            "{}",
            ctx(&format!("form field {name} missing"))
        );
    }
    // Modules: in the table and in the form's select.
    for (module, prober) in MODULES {
        assert!(
            html.contains(&format!("<td>{module}</td><td>{prober}</td>")),
            "{}",
            ctx(&format!("module {module} not in the table"))
        );
        assert!(
            html.contains(&format!("<option value=\"{module}\"")),
            "{}",
            ctx(&format!("module {module} not in the form"))
        );
    }
    for (name, href) in [
        ("Metrics", "metrics"),
        ("Configuration", "config"),
        ("Health", "-/healthy"),
    ] {
        assert!(
            html.contains(&format!("<a href=\"{href}\">{name}</a>")),
            "{}",
            ctx(&format!("no {name} link"))
        );
    }

    // One row per probe, newest first.
    let duration = Regex::new(r#"<td class="num">\d+\.\d ms</td>"#).unwrap();
    let time = Regex::new(r#"<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z">"#).unwrap();
    let mut positions = Vec::new();
    for &(id, target, module, success) in probes {
        let link = format!("href=\"logs?id={id}\"");
        let row = html
            .split("<tr")
            .find(|r| r.contains(&link))
            .unwrap_or_else(|| panic!("{}", ctx(&format!("no row for probe {id}"))));
        let row = row.split("</tr>").next().unwrap_or(row);
        let check = |cond: bool, msg: &str| {
            assert!(
                cond,
                "{}",
                ctx(&format!("probe {id}: {msg}; row: <tr{row}</tr>"))
            );
        };
        check(row.contains(&format!("<td>{module}</td>")), "module");
        check(row.contains(&escape(target)), "target");
        if success {
            check(row.contains(">Success<"), "Success");
            check(!row.contains("Failure"), "not a failure");
        } else {
            check(row.contains(">Failure<"), "Failure");
            check(
                row.contains("<td class=\"reason\">connect_refused</td>"),
                "reason connect_refused",
            );
        }
        check(duration.is_match(row), "duration");
        check(time.is_match(row), "time");
        check(row.contains("Probe again"), "probe again link");
        positions.push(html.find(&link).unwrap());
    }
    assert!(
        positions.windows(2).all(|w| w[0] > w[1]),
        "{}",
        ctx("probes are not newest first")
    );

    // The hostile target is shown, escaped, and never as markup.
    assert!(
        html.contains(EVIL_ESCAPED),
        "{}",
        ctx("escaped target missing")
    );
    assert!(
        !html.contains("<script>alert(1)"),
        "{}",
        ctx("raw <script> from the target")
    );
    assert!(
        !html.to_ascii_lowercase().contains("<script"),
        "{}",
        ctx("script element")
    );
}

/// What both the exporter and Chromium do to text.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `target/` (the parent of `CARGO_TARGET_TMPDIR`, `target/tmp`).
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

struct Run {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    command: String,
}

impl Run {
    fn describe(&self) -> String {
        let tail: Vec<&str> = self.stderr.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "command: {}\nstatus: {:?} after {:?}\n--- stderr (tail) ---\n{}",
            self.command,
            self.status,
            self.elapsed,
            tail.join("\n")
        )
    }
}

/// Runs headless Chromium on `url` with `extra` flags, in its own process
/// group with a fresh profile that blocks JavaScript; kills the group after
/// [`CHROMIUM_TIMEOUT`].
fn chromium(work: &Path, name: &str, extra: &[&str], url: &str) -> Run {
    let profile = work.join(format!("profile-{name}"));
    std::fs::create_dir_all(profile.join("Default")).expect("profile dir");
    // JavaScript blocked for every site.
    std::fs::write(
        profile.join("Default").join("Preferences"),
        r#"{"profile":{"default_content_setting_values":{"javascript":2}}}"#,
    )
    .expect("write chromium preferences");
    let stdout_path = work.join(format!("{name}.stdout"));
    let stderr_path = work.join(format!("{name}.stderr"));
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(url.to_string());
    let command = format!("{CHROMIUM} {}", args.join(" "));

    let started = Instant::now();
    let mut child = Command::new(CHROMIUM)
        .args(&args)
        .current_dir(work)
        .env("HOME", work)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("stdout file"))
        .stderr(File::create(&stderr_path).expect("stderr file"))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
    let group = child.id();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait chromium") {
            break Some(status);
        }
        if started.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Renderer or GPU helpers left behind (on timeout, or a launcher that
    // did not exec): they share the group we created.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
    let read = |p: &Path| {
        let mut s = String::new();
        if let Ok(mut f) = File::open(p) {
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            s = String::from_utf8_lossy(&bytes).into_owned();
        }
        s
    };
    let run = Run {
        status,
        stdout: read(&stdout_path),
        stderr: read(&stderr_path),
        elapsed: started.elapsed(),
        command,
    };
    assert!(
        run.status.is_some(),
        "chromium did not finish within {CHROMIUM_TIMEOUT:?} (killed)\n{}",
        run.describe()
    );
    run
}

/// An 8-bit RGB image.
struct Image {
    width: u32,
    height: u32,
    pixels: Vec<[u8; 3]>,
}

/// Decodes the PNGs Chromium writes: 8-bit RGB or RGBA, not interlaced.
fn decode_png(data: &[u8]) -> Image {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    assert!(data.starts_with(SIGNATURE), "not a PNG file");
    let mut pos = SIGNATURE.len();
    let (mut width, mut height, mut channels) = (0u32, 0u32, 0usize);
    let mut idat = Vec::new();
    while pos + 8 <= data.len() {
        let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &data[pos + 4..pos + 8];
        let body = data
            .get(pos + 8..pos + 8 + len)
            .expect("PNG chunk runs past the end of the file");
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(body[0..4].try_into().unwrap());
                height = u32::from_be_bytes(body[4..8].try_into().unwrap());
                let (depth, color, interlace) = (body[8], body[9], body[12]);
                assert_eq!(depth, 8, "PNG bit depth {depth} not supported");
                assert_eq!(interlace, 0, "interlaced PNG not supported");
                channels = match color {
                    2 => 3,
                    6 => 4,
                    other => panic!("PNG color type {other} not supported"),
                };
            }
            b"IDAT" => idat.extend_from_slice(body),
            b"IEND" => break,
            _ => {}
        }
        pos += 8 + len + 4; // length, type, data, CRC
    }
    assert!(width > 0 && height > 0 && channels > 0, "PNG without IHDR");

    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(idat.as_slice())
        .read_to_end(&mut raw)
        .expect("inflate PNG image data");
    let stride = width as usize * channels;
    assert_eq!(
        raw.len(),
        height as usize * (stride + 1),
        "PNG image data has the wrong size"
    );

    let mut pixels = Vec::with_capacity(width as usize * height as usize);
    let mut prev = vec![0u8; stride];
    let mut cur = vec![0u8; stride];
    for row in raw.chunks_exact(stride + 1) {
        let (filter, line) = (row[0], &row[1..]);
        for i in 0..stride {
            let a = if i >= channels { cur[i - channels] } else { 0 };
            let b = prev[i];
            let c = if i >= channels { prev[i - channels] } else { 0 };
            let predictor = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => paeth(a, b, c),
                other => panic!("PNG filter type {other}"),
            };
            cur[i] = line[i].wrapping_add(predictor);
        }
        pixels.extend(cur.chunks_exact(channels).map(|p| [p[0], p[1], p[2]]));
        std::mem::swap(&mut prev, &mut cur);
    }
    Image {
        width,
        height,
        pixels,
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// Size as requested; enough pixels away from the background colour, many
/// distinct colours (anti-aliased text), some saturated colour (badges,
/// links, the button: the stylesheet was applied) and the dark title bar at
/// the top.
fn check_not_blank(image: &Image, width: u32, height: u32, path: &Path) {
    let at = path.display();
    assert_eq!(
        (image.width, image.height),
        (width, height),
        "{at}: screenshot size"
    );
    let total = image.pixels.len();
    let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
    for p in &image.pixels {
        *counts.entry(*p).or_default() += 1;
    }
    let (background, bg_count) = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(c, n)| (*c, *n))
        .expect("pixels");
    let differing = total - bg_count;
    assert!(
        differing * 50 > total,
        "{at}: only {differing} of {total} pixels differ from the background {background:?}"
    );
    assert!(
        counts.len() >= 64,
        "{at}: only {} distinct colours",
        counts.len()
    );
    let saturated = image
        .pixels
        .iter()
        .filter(|p| p.iter().max().unwrap() - p.iter().min().unwrap() >= 80)
        .count();
    assert!(
        saturated * 1000 > total,
        "{at}: only {saturated} saturated pixels: was the stylesheet applied?"
    );
    let top_left = image.pixels[(4 * width + 4) as usize];
    assert!(
        top_left.iter().all(|&c| c < 80),
        "{at}: the title bar is not dark: {top_left:?}"
    );
}
