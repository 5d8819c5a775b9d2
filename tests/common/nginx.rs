//! Real nginx started on loopback with a generated config (filled in by the nginx end-to-end tests).
