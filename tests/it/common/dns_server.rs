//! An in-process DNS server for the dns prober tests: UDP, TCP and DNS over
//! TLS on 127.0.0.1 (ports of their own), messages built and parsed with
//! hickory-proto, each answer decided by the test's handler. It records
//! every query it received and from where.
//!
//! ```ignore
//! let server = DnsServer::start(|q| Reply::Message(answer(q, &[a("www.example.org.", "192.0.2.1")]))).await;
//! let target = server.udp.to_string();
//! ```

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

/// One thing the server sends back for a query.
pub enum Out {
    /// From the server's own socket.
    Bytes(Vec<u8>),
    /// UDP only: from another socket (another source port), to the same
    /// client address — a reply the client must not take.
    FromElsewhere(Vec<u8>),
}

/// What the handler decided.
pub enum Reply {
    /// The response, encoded and sent.
    Message(Message),
    /// Several sends, in order.
    Sequence(Vec<Out>),
    /// Nothing (the client waits until its deadline); TCP keeps the
    /// connection open.
    Silent,
    /// TCP: close the connection without an answer (UDP: nothing).
    Close,
}

type Handler = dyn Fn(&Message) -> Reply + Send + Sync;

/// A query as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub from: SocketAddr,
    /// `udp`, `tcp` or `tls`.
    pub transport: &'static str,
    pub query: Message,
}

pub struct DnsServer {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    /// DNS over TLS, when started with a TLS config.
    pub tls: Option<SocketAddr>,
    received: Arc<Mutex<Vec<Received>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl DnsServer {
    /// UDP and TCP.
    pub async fn start(handler: impl Fn(&Message) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(Arc::new(handler), None).await
    }

    /// UDP, TCP and DoT with `tls`.
    pub async fn start_tls(
        handler: impl Fn(&Message) -> Reply + Send + Sync + 'static,
        tls: Arc<ServerConfig>,
    ) -> Self {
        Self::start_with(Arc::new(handler), Some(tls)).await
    }

    async fn start_with(handler: Arc<Handler>, tls: Option<Arc<ServerConfig>>) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();

        let udp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind udp"));
        let udp_addr = udp.local_addr().expect("udp addr");
        {
            let (handler, received) = (handler.clone(), received.clone());
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 65535];
                loop {
                    let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                        continue;
                    };
                    let Ok(query) = Message::from_vec(&buf[..n]) else {
                        continue;
                    };
                    received.lock().unwrap().push(Received {
                        from,
                        transport: "udp",
                        query: query.clone(),
                    });
                    for send in sends(handler(&query)) {
                        match send {
                            Out::Bytes(b) => {
                                let _ = udp.send_to(&b, from).await;
                            }
                            Out::FromElsewhere(b) => {
                                let other = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
                                let _ = other.send_to(&b, from).await;
                            }
                        }
                    }
                }
            }));
        }

        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
        let tcp_addr = tcp.local_addr().expect("tcp addr");
        tasks.push(serve_streams(tcp, None, handler.clone(), received.clone()));

        let tls_addr = match tls {
            Some(config) => {
                let l = TcpListener::bind("127.0.0.1:0").await.expect("bind tls");
                let addr = l.local_addr().expect("tls addr");
                tasks.push(serve_streams(l, Some(config), handler, received.clone()));
                Some(addr)
            }
            None => None,
        };
        Self {
            udp: udp_addr,
            tcp: tcp_addr,
            tls: tls_addr,
            received,
            tasks,
        }
    }

    /// Every query received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The one query received (panics unless there was exactly one).
    pub fn only_query(&self) -> Received {
        let r = self.received();
        assert_eq!(r.len(), 1, "{r:#?}");
        r.into_iter().next().expect("one")
    }
}

fn sends(reply: Reply) -> Vec<Out> {
    match reply {
        Reply::Message(m) => vec![Out::Bytes(m.to_vec().expect("encode response"))],
        Reply::Sequence(s) => s,
        Reply::Silent | Reply::Close => Vec::new(),
    }
}

fn serve_streams(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    handler: Arc<Handler>,
    received: Arc<Mutex<Vec<Received>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((stream, from)) = listener.accept().await else {
                continue;
            };
            let (handler, received, tls) = (handler.clone(), received.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        if let Ok(s) = acceptor.accept(stream).await {
                            serve_stream(s, from, "tls", handler, received).await;
                        }
                    }
                    None => serve_stream(stream, from, "tcp", handler, received).await,
                }
            });
        }
    })
}

async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    from: SocketAddr,
    transport: &'static str,
    handler: Arc<Handler>,
    received: Arc<Mutex<Vec<Received>>>,
) {
    loop {
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if s.read_exact(&mut buf).await.is_err() {
            return;
        }
        let Ok(query) = Message::from_vec(&buf) else {
            return;
        };
        received.lock().unwrap().push(Received {
            from,
            transport,
            query: query.clone(),
        });
        let reply = handler(&query);
        match reply {
            Reply::Close => return,
            Reply::Silent => {
                // Hold the connection until the client goes away.
                let _ = s.read(&mut [0u8; 1]).await;
                return;
            }
            reply => {
                for send in sends(reply) {
                    let (Out::Bytes(b) | Out::FromElsewhere(b)) = send;
                    let mut framed = (b.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&b);
                    if s.write_all(&framed).await.is_err() {
                        return;
                    }
                }
                let _ = s.flush().await;
            }
        }
    }
}

// --- building answers ---------------------------------------------------------

pub fn name(s: &str) -> Name {
    Name::from_str(s).expect("name")
}

/// The response to `query`: same id, question and RD bit, NOERROR.
pub fn response(query: &Message) -> Message {
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.authoritative = true;
    m.add_queries(query.queries.clone());
    m
}

/// A response with `rcode` and these sections.
pub fn answer(
    query: &Message,
    rcode: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
) -> Message {
    let mut m = response(query);
    m.metadata.response_code = rcode;
    m.add_answers(answers);
    m.add_authorities(authorities);
    m.add_additionals(additionals);
    m
}

pub fn a(owner: &str, ip: &str) -> Record {
    Record::from_rdata(name(owner), 300, RData::A(A(ip.parse().expect("ipv4"))))
}

pub fn ns(owner: &str, host: &str) -> Record {
    Record::from_rdata(name(owner), 3600, RData::NS(NS(name(host))))
}

pub fn txt(owner: &str, text: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::TXT(TXT::new(vec![text.to_string()])),
    )
}

pub fn soa(owner: &str, serial: u32) -> Record {
    Record::from_rdata(
        name(owner),
        3600,
        RData::SOA(SOA::new(
            name(&format!("ns1.{owner}")),
            name(&format!("hostmaster.{owner}")),
            serial,
            7200,
            900,
            1_209_600,
            300,
        )),
    )
}

/// `msg` encoded with its id replaced.
pub fn with_id(msg: &Message, id: u16) -> Vec<u8> {
    let mut m = msg.clone();
    m.metadata.id = id;
    m.to_vec().expect("encode")
}
