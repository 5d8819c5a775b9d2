//! `--web.systemd-socket`: the listening sockets systemd passes by socket
//! activation (`sd_listen_fds(3)`): `LISTEN_PID` names this process,
//! `LISTEN_FDS` counts the sockets, which are file descriptors 3, 4, ...

use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;
/// More than any unit passes; a larger `LISTEN_FDS` is a broken environment.
const MAX_FDS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(
        "no socket activation file descriptors found: LISTEN_PID is not set (is the exporter started by a systemd .socket unit?)"
    )]
    NoPid,
    #[error(
        "LISTEN_PID={found:?} is not this process ({ours}): the sockets were meant for another"
    )]
    OtherPid { found: String, ours: u32 },
    #[error("no socket activation file descriptors found: LISTEN_FDS={0:?}")]
    BadCount(String),
    #[error("socket activation file descriptor {fd} is not open: {source}")]
    NotOpen { fd: RawFd, source: std::io::Error },
    #[error("socket activation file descriptor {fd} is not a socket")]
    NotSocket { fd: RawFd },
    #[error("socket activation file descriptor {fd} is not a TCP listening socket: {source}")]
    NotTcp { fd: RawFd, source: std::io::Error },
}

/// Takes the activated sockets from the environment.
///
/// Call it first thing, before the process opens any file of its own: the
/// descriptors it takes are then the inherited ones and nothing else can own
/// them.
pub fn take_listeners() -> Result<Vec<std::net::TcpListener>, ActivationError> {
    let pid = std::env::var("LISTEN_PID").map_err(|_| ActivationError::NoPid)?;
    let ours = std::process::id();
    if pid.trim().parse::<u32>().ok() != Some(ours) {
        return Err(ActivationError::OtherPid { found: pid, ours });
    }
    let count_text = std::env::var("LISTEN_FDS").unwrap_or_default();
    let count = count_text
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_FDS).contains(n))
        .ok_or_else(|| ActivationError::BadCount(count_text.clone()))?;
    let mut listeners = Vec::with_capacity(count);
    for fd in (LISTEN_FDS_START..).take(count) {
        listeners.push(take_fd(fd)?);
    }
    Ok(listeners)
}

fn take_fd(fd: RawFd) -> Result<std::net::TcpListener, ActivationError> {
    // SAFETY: fstat only writes into the buffer we give it; an fd that is
    // not open is an EBADF error, not undefined behaviour.
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return Err(ActivationError::NotOpen {
            fd,
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: fstat returned 0, so it filled the buffer.
    let stat = unsafe { stat.assume_init() };
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(ActivationError::NotSocket { fd });
    }
    // SAFETY: LISTEN_PID names this process, so systemd (or whoever
    // activated us) passed descriptors 3..3+LISTEN_FDS to us; fstat showed
    // this one is open and a socket. It was inherited: the process has not
    // opened anything before this runs (see `take_listeners`), nothing else
    // in it refers to this descriptor, and each descriptor is taken once, so
    // the OwnedFd is its only owner and closes it exactly once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // Like go-systemd: the socket is ours alone, not for child processes.
    // SAFETY: fcntl on a descriptor we own, with integer arguments.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
    let listener = std::net::TcpListener::from(owned);
    // An inet stream socket has an inet local address; a unix socket's
    // address does not parse as one.
    listener
        .local_addr()
        .map_err(|source| ActivationError::NotTcp { fd, source })?;
    let mut accepting: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `accepting`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut accepting as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || accepting == 0 {
        return Err(ActivationError::NotTcp {
            fd,
            source: std::io::Error::other("the socket is not listening"),
        });
    }
    Ok(listener)
}
