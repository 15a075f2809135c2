//! A fake S3 store on loopback whose behaviour can be switched while it runs (down, hanging,
//! 500, garbage, or a proxy to a real store), for the fault and process tests.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the fake answers a connection. Read when the connection is accepted (a proxied
/// connection is also closed as soon as the mode changes, so a pooled keep-alive
/// connection never carries the old behaviour over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Accept, read, never answer.
    Hang = 0,
    /// `500 Internal Server Error` with an S3 error document.
    Error500 = 1,
    /// `200 OK` with a body that is not the XML asked for (rotates through a few kinds).
    GarbageBody = 2,
    /// Bytes that are not HTTP at all.
    GarbageProtocol = 3,
    /// Pipe the connection to the upstream store (after the configured delay).
    Proxy = 4,
}

impl Mode {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Hang,
            1 => Self::Error500,
            2 => Self::GarbageBody,
            3 => Self::GarbageProtocol,
            _ => Self::Proxy,
        }
    }
}

struct Shared {
    mode: AtomicU8,
    stop: AtomicBool,
    delay_ms: AtomicU64,
    upstream: Mutex<Option<SocketAddr>>,
    accepted: AtomicUsize,
    garbage: AtomicUsize,
}

impl Shared {
    fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(Ordering::SeqCst))
    }
}

/// A fake store on `127.0.0.1`. Dropping it stops it.
pub struct FakeStore {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

const POLL: Duration = Duration::from_millis(25);

impl FakeStore {
    pub fn start(mode: Mode) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), mode).expect("bind a loopback port")
    }

    /// On a given address (to take over a port that had nothing listening).
    pub fn start_on(addr: SocketAddr, mode: Mode) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            mode: AtomicU8::new(mode as u8),
            stop: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            upstream: Mutex::new(None),
            accepted: AtomicUsize::new(0),
            garbage: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("fake-store".into())
            .spawn(move || accept_loop(listener, s))?;
        Ok(Self {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().unwrap() = Some(upstream);
    }

    /// A delay before each proxied connection is piped (a slow store).
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FakeStore {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((socket, _)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let s = shared.clone();
                let _ = std::thread::Builder::new()
                    .name("fake-store-conn".into())
                    .spawn(move || {
                        let _ = handle(socket, &s);
                    });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// One read with the socket's timeout: `None` when nothing came in time.
fn read_some(socket: &mut TcpStream, chunk: &mut [u8]) -> io::Result<Option<usize>> {
    match socket.read(chunk) {
        Ok(n) => Ok(Some(n)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Read one request head (up to the blank line); returns its method.
fn read_head(socket: &mut TcpStream, shared: &Shared) -> io::Result<String> {
    socket.set_read_timeout(Some(POLL))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if shared.stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            return Err(io::Error::other("stopped"));
        }
        match read_some(socket, &mut chunk)? {
            Some(0) => return Err(io::Error::other("closed")),
            Some(n) => buf.extend_from_slice(&chunk[..n]),
            None => {}
        }
    }
    let line = String::from_utf8_lossy(&buf);
    Ok(line.split(' ').next().unwrap_or("").to_owned())
}

fn respond(socket: &mut TcpStream, method: &str, status: &str, ct: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = socket.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = socket.write_all(body);
    }
    let _ = socket.flush();
    let _ = socket.shutdown(Shutdown::Both);
}

const GARBAGE: [&[u8]; 5] = [
    b"\x00\xff\xfethis is not XML at all <<<>>> &&& \x01\x02",
    b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Contents><Key>uploads/",
    b"{\"json\": \"where XML was expected\"}",
    b"<html><body><h1>Welcome to nginx!</h1></body></html>",
    b"<?xml version=\"1.0\"?><Error><Code>Fine</Code></Error>",
];

fn handle(mut socket: TcpStream, shared: &Shared) -> io::Result<()> {
    socket.set_nonblocking(false)?;
    match shared.mode() {
        Mode::Hang => {
            // Read and discard until the client gives up (or the fake stops).
            socket.set_read_timeout(Some(POLL))?;
            let mut chunk = [0u8; 4096];
            loop {
                if shared.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                if read_some(&mut socket, &mut chunk)? == Some(0) {
                    return Ok(());
                }
            }
        }
        Mode::Error500 => {
            let method = read_head(&mut socket, shared)?;
            respond(
                &mut socket,
                &method,
                "500 Internal Server Error",
                "application/xml",
                b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>",
            );
            Ok(())
        }
        Mode::GarbageBody => {
            let method = read_head(&mut socket, shared)?;
            let i = shared.garbage.fetch_add(1, Ordering::SeqCst) % GARBAGE.len();
            respond(
                &mut socket,
                &method,
                "200 OK",
                "application/xml",
                GARBAGE[i],
            );
            Ok(())
        }
        Mode::GarbageProtocol => {
            let _ = read_head(&mut socket, shared)?;
            let _ = socket.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff garbage \xfe\r\n\r\n");
            let _ = socket.shutdown(Shutdown::Both);
            Ok(())
        }
        Mode::Proxy => proxy(socket, shared),
    }
}

fn proxy(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        std::thread::sleep(Duration::from_millis(delay));
    }
    let Some(upstream) = *shared.upstream.lock().unwrap() else {
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    };
    let server = TcpStream::connect(upstream)?;
    let (mut c_read, mut s_write) = (client.try_clone()?, server.try_clone()?);
    let (mut s_read, mut c_write) = (server, client);
    let c_close = c_write.try_clone()?;
    let s_close = s_write.try_clone()?;
    // upstream → client: plain copy; ends when either side is shut down.
    let back = std::thread::spawn(move || {
        let _ = io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Both);
    });
    // client → upstream, polling the mode: a change of mode closes the connection.
    c_read.set_read_timeout(Some(POLL))?;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if shared.stop.load(Ordering::SeqCst) || shared.mode() != Mode::Proxy {
            break;
        }
        match c_read.read(&mut chunk) {
            Ok(0) => {
                // The client is done sending: let the answer finish.
                let _ = s_write.shutdown(Shutdown::Write);
                let _ = back.join();
                return Ok(());
            }
            Ok(n) => {
                if s_write.write_all(&chunk[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = c_close.shutdown(Shutdown::Both);
    let _ = s_close.shutdown(Shutdown::Both);
    let _ = back.join();
    Ok(())
}

/// A loopback port with nothing listening (bound, then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// How many kinds of garbage body the fake rotates through.
pub const GARBAGE_KINDS: usize = GARBAGE.len();
