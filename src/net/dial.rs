//! TCP connect, optionally from a given source address.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

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
