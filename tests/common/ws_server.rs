//! In-process WebSocket test servers (filled in by the WebSocket tests).
