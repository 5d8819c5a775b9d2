//! TCP connect and connected UDP sockets, optionally from a given source
//! address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use super::NetError;

/// Connect to `addr`; `TCP_NODELAY` is set because probes write small
/// requests and wait for answers (Nagle + delayed ACK would add ~40 ms).
pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, NetError> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(NetError::Io)?;
    if let Some(src) = source {
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(|e| NetError::Io(std::io::Error::new(e.kind(), format!("bind {src}: {e}"))))?;
    }
    let stream = socket.connect(addr).await.map_err(NetError::Io)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A UDP socket connected to `addr` (optionally bound to `source`): the
/// kernel then delivers only datagrams from `addr`, so a reply from any
/// other address never reaches the probe, and an ICMP port unreachable
/// comes back as "connection refused" on the next receive.
pub async fn connect_udp(addr: SocketAddr, source: Option<IpAddr>) -> Result<UdpSocket, NetError> {
    let local = match (source, addr) {
        (Some(src), _) => SocketAddr::new(src, 0),
        (None, SocketAddr::V4(_)) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        (None, SocketAddr::V6(_)) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| {
        NetError::Io(std::io::Error::new(
            e.kind(),
            format!("bind {}: {e}", local.ip()),
        ))
    })?;
    socket.connect(addr).await.map_err(NetError::Io)?;
    Ok(socket)
}
