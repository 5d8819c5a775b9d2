//! ICMP echo: the packets and the socket (the icmp prober's transport).
//!
//! The echo packets are built and parsed here rather than with a crate:
//! an echo request is an 8-byte header (type, code, checksum, id,
//! sequence) and a payload, and the maintained packet crates
//! (pnet_packet, etherparse) would bring much more than these 60 lines
//! for it. The socket is socket2's, driven by tokio's `AsyncFd`.
//!
//! Which socket, in blackbox's order: an unprivileged ICMP datagram socket
//! (`socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)`, allowed when the
//! process's group is inside `net.ipv4.ping_group_range`; the kernel sets
//! the echo id and the checksum), else a raw socket (root or
//! CAP_NET_RAW). Opening goes through `Connector::open_icmp`, which checks
//! the target policy first.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, MaybeUninitSlice, MsgHdrMut, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::NetError;

/// blackbox's payload when `payload_size` is 0, and the text a larger or
/// smaller payload is cut from (or padded with zeros after).
pub const DEFAULT_PAYLOAD: &[u8] = b"Prometheus Blackbox Exporter";

/// The payload of `size` bytes blackbox sends (`payload_size`).
pub fn payload(size: usize) -> Vec<u8> {
    if size == 0 {
        return DEFAULT_PAYLOAD.to_vec();
    }
    let mut p: Vec<u8> = DEFAULT_PAYLOAD.iter().copied().take(size).collect();
    p.resize(size, 0);
    p
}

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const HEADER_LEN: usize = 8;

/// The kind of socket a probe got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// Unprivileged ICMP datagram socket: the kernel owns the echo id.
    Datagram,
    /// Raw socket (root or CAP_NET_RAW): sees every ICMP packet of the host.
    Raw,
}

impl SocketKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SocketKind::Datagram => "datagram",
            SocketKind::Raw => "raw",
        }
    }
}

/// One echo request (and what its reply must carry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    pub id: u16,
    pub seq: u16,
    pub payload: Vec<u8>,
}

impl Echo {
    /// The ICMP message. The ICMPv4 checksum is computed here; the ICMPv6
    /// one covers a pseudo-header with the source address, which the kernel
    /// fills in for both socket kinds (RFC 3542 §3.1), so it is left 0.
    pub fn encode(&self, v6: bool) -> Vec<u8> {
        let mut packet = Vec::with_capacity(HEADER_LEN + self.payload.len());
        packet.push(if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 });
        packet.push(0);
        packet.extend_from_slice(&[0, 0]);
        packet.extend_from_slice(&self.id.to_be_bytes());
        packet.extend_from_slice(&self.seq.to_be_bytes());
        packet.extend_from_slice(&self.payload);
        if !v6 {
            let sum = checksum(&packet).to_be_bytes();
            packet[2..4].copy_from_slice(&sum);
        }
        packet
    }

    /// Whether `reply` answers this request. On a datagram socket the
    /// kernel replaced our id with its own (and only delivers replies
    /// carrying it), so the sequence and the payload decide; on a raw
    /// socket the id must match too.
    pub fn answered_by(&self, reply: &EchoReply, kind: SocketKind) -> bool {
        reply.seq == self.seq
            && reply.payload == self.payload
            && (kind == SocketKind::Datagram || reply.id == self.id)
    }
}

/// The RFC 1071 internet checksum.
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = bytes.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The fold above leaves at most 16 bits.
    !(sum as u16)
}

/// An echo reply as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    pub id: u16,
    pub seq: u16,
    pub payload: Vec<u8>,
    /// The TTL (IPv4 header) when the packet came with its IP header.
    pub ttl: Option<u8>,
}

/// Why a received packet is not an echo reply we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("packet too short ({0} bytes)")]
    TooShort(usize),
    #[error("bad IPv4 header")]
    IpHeader,
    #[error("not an ICMP packet (IP protocol {0})")]
    NotIcmp(u8),
    #[error("ICMP type {0} code {1} is not an echo reply")]
    NotEchoReply(u8, u8),
    #[error("bad ICMP checksum")]
    Checksum,
}

/// Parse what a socket of `kind` received: a raw IPv4 socket delivers the
/// IP header first; every other socket delivers the ICMP message alone.
pub fn parse_reply(packet: &[u8], v6: bool, kind: SocketKind) -> Result<EchoReply, Malformed> {
    let (icmp, ttl) = if !v6 && kind == SocketKind::Raw {
        let (&first, _) = packet.split_first().ok_or(Malformed::TooShort(0))?;
        let header_len = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || header_len < 20 {
            return Err(Malformed::IpHeader);
        }
        if packet.len() < header_len {
            return Err(Malformed::TooShort(packet.len()));
        }
        let protocol = packet[9];
        if protocol != 1 {
            return Err(Malformed::NotIcmp(protocol));
        }
        (&packet[header_len..], Some(packet[8]))
    } else {
        (packet, None)
    };
    let [
        kind_byte,
        code,
        _,
        _,
        id_hi,
        id_lo,
        seq_hi,
        seq_lo,
        payload @ ..,
    ] = icmp
    else {
        return Err(Malformed::TooShort(icmp.len()));
    };
    let reply_type = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    if *kind_byte != reply_type || *code != 0 {
        return Err(Malformed::NotEchoReply(*kind_byte, *code));
    }
    // The kernel checks the ICMPv6 checksum of what it delivers (and the
    // ICMPv4 one on datagram sockets); a raw IPv4 socket gets packets
    // before that check.
    if !v6 && checksum(icmp) != 0 {
        return Err(Malformed::Checksum);
    }
    Ok(EchoReply {
        id: u16::from_be_bytes([*id_hi, *id_lo]),
        seq: u16::from_be_bytes([*seq_hi, *seq_lo]),
        payload: payload.to_vec(),
        ttl,
    })
}

/// How the echo socket is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoOptions {
    /// `ttl`: the hop limit of the request; 0 keeps the system's.
    pub ttl: u8,
    /// `dont_fragment` (IPv4 only; IPv6 routers never fragment).
    pub dont_fragment: bool,
    /// `source_ip_address`.
    pub source: Option<IpAddr>,
}

/// A received datagram: where from, the packet, the hop limit the kernel
/// reported in a control message.
#[derive(Debug)]
pub struct Received {
    pub from: Option<IpAddr>,
    pub packet: Vec<u8>,
    pub hop_limit: Option<u8>,
}

/// An open ICMP socket aimed at one peer.
#[derive(Debug)]
pub struct EchoSocket {
    fd: AsyncFd<Socket>,
    kind: SocketKind,
    peer: IpAddr,
}

/// What to do about a socket the kernel refused us.
const PERMISSION_HINT: &str = "opening an ICMP socket needs either CAP_NET_RAW (`setcap cap_net_raw+ep <binary>`, or `AmbientCapabilities=CAP_NET_RAW` in the systemd unit) or the exporter's group inside net.ipv4.ping_group_range (`sysctl net.ipv4.ping_group_range=\"0 2147483647\"`)";

impl EchoSocket {
    /// Open a socket for echoing `peer`: datagram first, raw when the
    /// kernel refuses that, as blackbox does.
    pub fn open(peer: IpAddr, options: &EchoOptions) -> Result<EchoSocket, NetError> {
        if let Some(src) = options.source
            && src.is_ipv4() != peer.is_ipv4()
        {
            return Err(NetError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("source_ip_address {src} is not of the same IP protocol as {peer}"),
            )));
        }
        let (domain, protocol) = match peer {
            IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
            IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
        };
        let (socket, kind) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
            Ok(s) => (s, SocketKind::Datagram),
            Err(dgram) => match Socket::new(domain, Type::RAW, Some(protocol)) {
                Ok(s) => (s, SocketKind::Raw),
                Err(raw) => {
                    let kind = if raw.kind() == io::ErrorKind::PermissionDenied
                        || dgram.kind() == io::ErrorKind::PermissionDenied
                    {
                        io::ErrorKind::PermissionDenied
                    } else {
                        raw.kind()
                    };
                    return Err(NetError::Io(io::Error::new(
                        kind,
                        format!(
                            "cannot open an ICMP socket (datagram: {dgram}; raw: {raw}): {PERMISSION_HINT}"
                        ),
                    )));
                }
            },
        };
        configure(&socket, peer, kind, options).map_err(NetError::Io)?;
        // SAFETY: `socket` owns its descriptor (an OwnedFd inside), which
        // stays open and the same until the AsyncFd that now owns `socket`
        // is dropped; Socket::as_raw_fd always returns that descriptor.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| NetError::Io(e.into()))?;
        Ok(EchoSocket { fd, kind, peer })
    }

    pub fn kind(&self) -> SocketKind {
        self.kind
    }

    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// Send one ICMP message to the peer.
    pub async fn send(&self, packet: &[u8]) -> io::Result<()> {
        let to = SockAddr::from(SocketAddr::new(self.peer, 0));
        loop {
            let mut ready = self.fd.writable().await?;
            match ready.try_io(|fd| fd.get_ref().send_to(packet, &to)) {
                Ok(sent) => return sent.map(drop),
                Err(_would_block) => continue,
            }
        }
    }

    /// Receive the next datagram (any ICMP packet, on a raw socket).
    pub async fn recv(&self) -> io::Result<Received> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|fd| recv_with_hop_limit(fd.get_ref(), self.peer)) {
                Ok(received) => return received,
                Err(_would_block) => continue,
            }
        }
    }
}

/// The largest IP packet: nothing a socket delivers is cut.
const MAX_PACKET: usize = 65536;

fn recv_with_hop_limit(socket: &Socket, peer: IpAddr) -> io::Result<Received> {
    let mut buf = vec![MaybeUninit::new(0u8); MAX_PACKET];
    let mut control = [MaybeUninit::new(0u8); 128];
    // Room for an address of the socket's family (the kernel writes the
    // sender's there; its length stays that of the family).
    let unspecified = match peer {
        IpAddr::V4(_) => IpAddr::from([0u8; 4]),
        IpAddr::V6(_) => IpAddr::from([0u8; 16]),
    };
    let mut from = SockAddr::from(SocketAddr::new(unspecified, 0));
    let (n, control_len) = {
        let mut bufs = [MaybeUninitSlice::new(&mut buf)];
        let mut msg = MsgHdrMut::new()
            .with_addr(&mut from)
            .with_buffers(&mut bufs)
            .with_control(&mut control);
        let n = socket.recvmsg(&mut msg, 0)?;
        (n, msg.control_len())
    };
    let packet = initialized(buf.get(..n).unwrap_or_default());
    let control = initialized(control.get(..control_len).unwrap_or_default());
    Ok(Received {
        from: from.as_socket().map(|a| a.ip()),
        packet,
        hop_limit: hop_limit(&control),
    })
}

/// Bytes of a buffer that was filled with zeros before the kernel wrote
/// into it.
fn initialized(bytes: &[MaybeUninit<u8>]) -> Vec<u8> {
    bytes
        .iter()
        // SAFETY: every buffer passed here was created with
        // `MaybeUninit::new(0)`, so each byte is initialized whether or not
        // recvmsg wrote it.
        .map(|b| unsafe { b.assume_init() })
        .collect()
}

/// The TTL / hop limit from the control messages (IP_TTL with
/// IP_RECVTTL, IPV6_HOPLIMIT with IPV6_RECVHOPLIMIT), read with the
/// kernel's `cmsghdr` layout: length (size_t), level, type (ints), the data
/// aligned to size_t.
pub fn hop_limit(control: &[u8]) -> Option<u8> {
    let align = std::mem::size_of::<usize>();
    let header = std::mem::size_of::<libc::cmsghdr>();
    let int = std::mem::size_of::<libc::c_int>();
    let mut rest = control;
    while rest.len() >= header {
        let len = usize::from_ne_bytes(rest.get(..align)?.try_into().ok()?);
        let level = libc::c_int::from_ne_bytes(rest.get(align..align + int)?.try_into().ok()?);
        let kind =
            libc::c_int::from_ne_bytes(rest.get(align + int..align + 2 * int)?.try_into().ok()?);
        if len < header || len > rest.len() {
            return None;
        }
        let data_at = header.div_ceil(align) * align;
        let wanted = (level == libc::IPPROTO_IP && kind == libc::IP_TTL)
            || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_HOPLIMIT);
        if wanted {
            let value =
                libc::c_int::from_ne_bytes(rest.get(data_at..data_at + int)?.try_into().ok()?);
            return u8::try_from(value).ok();
        }
        let next = len.div_ceil(align) * align;
        rest = rest.get(next..)?;
    }
    None
}

fn configure(
    socket: &Socket,
    peer: IpAddr,
    kind: SocketKind,
    options: &EchoOptions,
) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    if let Some(src) = options.source {
        socket
            .bind(&SockAddr::from(SocketAddr::new(src, 0)))
            .map_err(|e| io::Error::new(e.kind(), format!("bind {src}: {e}")))?;
    }
    match peer {
        IpAddr::V4(_) => {
            if options.ttl > 0 {
                socket.set_ttl_v4(u32::from(options.ttl))?;
            }
            // A raw socket hands over the IP header with its TTL; a
            // datagram socket reports it in a control message when asked.
            if kind == SocketKind::Datagram {
                set_int_option(socket, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
            }
            if options.dont_fragment {
                set_int_option(
                    socket,
                    libc::IPPROTO_IP,
                    libc::IP_MTU_DISCOVER,
                    libc::IP_PMTUDISC_DO,
                )?;
            }
        }
        IpAddr::V6(_) => {
            if options.ttl > 0 {
                socket.set_unicast_hops_v6(u32::from(options.ttl))?;
            }
            socket.set_recv_hoplimit_v6(true)?;
        }
    }
    Ok(())
}

/// An integer socket option socket2 has no setter for.
fn set_int_option(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the descriptor is open (borrowed from `socket` for the
    // call), and the option value points to a live c_int of the length
    // passed; setsockopt only reads it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Echo {
        Echo {
            id: 0x1234,
            seq: 7,
            payload: payload(0),
        }
    }

    #[test]
    fn payload_is_blackbox_text_cut_or_padded() {
        assert_eq!(payload(0), DEFAULT_PAYLOAD);
        assert_eq!(payload(10), b"Prometheus");
        let long = payload(32);
        assert_eq!(&long[..28], DEFAULT_PAYLOAD);
        assert_eq!(&long[28..], &[0, 0, 0, 0]);
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2, complemented.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        // An odd length pads with a zero byte.
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn v4_request_checksums_to_zero() {
        let packet = echo().encode(false);
        assert_eq!(packet[..2], [8, 0]);
        assert_eq!(packet[4..8], [0x12, 0x34, 0, 7]);
        assert_eq!(checksum(&packet), 0);
        // ICMPv6: the kernel computes it.
        let packet = echo().encode(true);
        assert_eq!(packet[..4], [128, 0, 0, 0]);
    }

    /// The reply a peer sends to `echo`: type changed, checksum redone.
    fn reply_to(e: &Echo, v6: bool) -> Vec<u8> {
        let mut p = e.encode(v6);
        p[0] = if v6 { 129 } else { 0 };
        p[2..4].copy_from_slice(&[0, 0]);
        if !v6 {
            let sum = checksum(&p).to_be_bytes();
            p[2..4].copy_from_slice(&sum);
        }
        p
    }

    fn ipv4_header(ttl: u8, protocol: u8) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, ttl, protocol, 0, 0];
        h.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
        h
    }

    #[test]
    fn replies_parse_and_match() {
        let e = echo();
        for v6 in [false, true] {
            let r = parse_reply(&reply_to(&e, v6), v6, SocketKind::Datagram).expect("reply");
            assert!(e.answered_by(&r, SocketKind::Raw));
            assert_eq!(r.ttl, None);
        }
        let mut raw = ipv4_header(63, 1);
        raw.extend(reply_to(&e, false));
        let r = parse_reply(&raw, false, SocketKind::Raw).expect("reply");
        assert_eq!(r.ttl, Some(63));
        assert!(e.answered_by(&r, SocketKind::Raw));
    }

    #[test]
    fn other_ids_sequences_and_payloads_do_not_match() {
        let e = echo();
        let other_id = Echo { id: 1, ..echo() };
        let r = parse_reply(&reply_to(&other_id, false), false, SocketKind::Datagram).unwrap();
        // The kernel owns the id of a datagram socket.
        assert!(e.answered_by(&r, SocketKind::Datagram));
        assert!(!e.answered_by(&r, SocketKind::Raw));
        let other_seq = Echo { seq: 8, ..echo() };
        let r = parse_reply(&reply_to(&other_seq, false), false, SocketKind::Datagram).unwrap();
        assert!(!e.answered_by(&r, SocketKind::Datagram));
        let other_payload = Echo {
            payload: payload(27),
            ..echo()
        };
        let r = parse_reply(&reply_to(&other_payload, true), true, SocketKind::Raw).unwrap();
        assert!(!e.answered_by(&r, SocketKind::Raw));
    }

    #[test]
    fn malformed_packets_are_refused() {
        let e = echo();
        assert_eq!(
            parse_reply(&[0, 0, 0], false, SocketKind::Datagram),
            Err(Malformed::TooShort(3))
        );
        assert_eq!(
            parse_reply(&[], false, SocketKind::Raw),
            Err(Malformed::TooShort(0))
        );
        // Our own request, seen by a raw socket on loopback.
        assert_eq!(
            parse_reply(&e.encode(false), false, SocketKind::Datagram),
            Err(Malformed::NotEchoReply(8, 0))
        );
        let mut bad = reply_to(&e, false);
        bad[9] ^= 0xff;
        assert_eq!(
            parse_reply(&bad, false, SocketKind::Datagram),
            Err(Malformed::Checksum)
        );
        // IP header: wrong version, too short a header length, cut, not ICMP.
        let mut raw = ipv4_header(64, 1);
        raw[0] = 0x65;
        assert_eq!(
            parse_reply(&raw, false, SocketKind::Raw),
            Err(Malformed::IpHeader)
        );
        raw[0] = 0x44;
        assert_eq!(
            parse_reply(&raw, false, SocketKind::Raw),
            Err(Malformed::IpHeader)
        );
        raw[0] = 0x4f;
        assert_eq!(
            parse_reply(&raw, false, SocketKind::Raw),
            Err(Malformed::TooShort(20))
        );
        let mut udp = ipv4_header(64, 17);
        udp.extend(reply_to(&e, false));
        assert_eq!(
            parse_reply(&udp, false, SocketKind::Raw),
            Err(Malformed::NotIcmp(17))
        );
        let mut cut = ipv4_header(64, 1);
        cut.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            parse_reply(&cut, false, SocketKind::Raw),
            Err(Malformed::TooShort(3))
        );
    }

    fn cmsg(level: libc::c_int, kind: libc::c_int, value: libc::c_int) -> Vec<u8> {
        let header = std::mem::size_of::<libc::cmsghdr>();
        let len = header + 4;
        let mut m = Vec::new();
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&level.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.resize(header, 0);
        m.extend_from_slice(&value.to_ne_bytes());
        m.resize(len.div_ceil(8) * 8, 0);
        m
    }

    #[test]
    fn hop_limit_from_control_messages() {
        assert_eq!(hop_limit(&[]), None);
        assert_eq!(
            hop_limit(&cmsg(libc::IPPROTO_IP, libc::IP_TTL, 64)),
            Some(64)
        );
        let mut two = cmsg(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, 0);
        two.extend(cmsg(libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT, 255));
        assert_eq!(hop_limit(&two), Some(255));
        // A length running past the buffer, or out of range: nothing.
        let mut bad = cmsg(libc::IPPROTO_IP, libc::IP_TTL, 64);
        bad[0] = 200;
        assert_eq!(hop_limit(&bad), None);
        assert_eq!(hop_limit(&cmsg(libc::IPPROTO_IP, libc::IP_TTL, 300)), None);
        assert_eq!(hop_limit(&[1, 2, 3]), None);
    }
}
