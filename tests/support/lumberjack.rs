//! A Lumberjack v2 server for tests that behaves like Logstash's beats input and can be
//! scripted per window: one ACK per window (the highest sequence, as `BeatsHandler.needAck`),
//! ACK(0) keepalives while it holds a window (Logstash's `ConnectionHandler` does so every 5 s
//! by default), partial ACKs, connection resets mid-window, out-of-range sequence numbers.
//!
//! It parses what go-lumber's `server/v2/reader.go` and logstash-input-beats'
//! `BeatsParser.java` parse (`2W` count, then `2J` seq/len/json frames or `2C` len/zlib
//! frames holding `J` frames), and is stricter than both where they trust the client: every
//! window's sequence numbers must run 1..=count, the JSON must parse, a window may hold at
//! most 10,000 events (go-lumber's default `MaxWindowSize`). Violations are recorded in
//! `errors()` and close the connection.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// go-lumber's `defaultMaxWindowSize`.
pub const MAX_WINDOW: u32 = 10_000;
/// Logstash's keepalive interval while a batch is pending (write-idle of its IdleStateHandler).
pub const LOGSTASH_KEEPALIVE: Duration = Duration::from_secs(5);

/// What the server knows about a window when it decides what to do with it.
#[derive(Debug, Clone, Copy)]
pub struct WindowCtx {
    /// Connection number, from 0.
    pub conn: usize,
    /// Window number over all connections, from 0.
    pub index: usize,
    /// Window number on this connection, from 0.
    pub in_conn: usize,
    pub size: u32,
}

#[derive(Debug, Clone)]
pub enum Action {
    /// Read the window, ACK it in full.
    Ack,
    /// Read the window, send ACK(0) every `keepalive` for `hold`, then ACK it in full.
    Hold { hold: Duration, keepalive: Duration },
    /// Read the window, ACK its first `n` events, then reset the connection.
    PartialThenReset(u32),
    /// Read the window, ACK its first `n` events, wait `pause`, then ACK the rest.
    PartialThenAck(u32, Duration),
    /// Read the window header and a few bytes, then reset the connection (RST).
    ResetMidWindow,
    /// Read the window, answer ACK(`seq`) whatever the window size.
    AckSeq(u32),
}

pub type Script = Arc<dyn Fn(&WindowCtx) -> Action + Send + Sync>;

/// `action` for window number `index` (over all connections), a plain ACK for every other.
pub fn on_window(index: usize, action: Action) -> Script {
    Arc::new(move |c: &WindowCtx| {
        if c.index == index {
            action.clone()
        } else {
            Action::Ack
        }
    })
}

/// Every window of the first connection held for `hold` (ACK(0) every second meanwhile);
/// windows of later connections ACKed at once.
pub fn hold_first_connection(hold: Duration) -> Script {
    Arc::new(move |c: &WindowCtx| {
        if c.conn == 0 {
            Action::Hold {
                hold,
                keepalive: Duration::from_secs(1),
            }
        } else {
            Action::Ack
        }
    })
}

#[derive(Debug, Clone)]
pub struct Received {
    pub conn: usize,
    pub window: usize,
    pub seq: u32,
    pub event: Value,
}

#[derive(Debug, Clone)]
pub struct WindowRec {
    pub conn: usize,
    pub size: u32,
    pub compressed: bool,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    events: Vec<Received>,
    windows: Vec<WindowRec>,
    connections: usize,
    keepalives: usize,
    errors: Vec<String>,
}

pub struct LogstashServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl LogstashServer {
    /// A server on a free port that ACKs every window at once.
    pub fn start() -> Self {
        Self::with_script(Arc::new(|_| Action::Ack))
    }

    pub fn with_script(script: Script) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        Self::serve(l, script)
    }

    /// Listen on `port` (one a test reserved earlier, e.g. while connections were refused).
    pub fn start_on(port: u16, script: Script) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => return Self::serve(l, script),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot listen on {port}: {e}"),
            }
        }
    }

    fn serve(l: TcpListener, script: Script) -> Self {
        let port = l.local_addr().expect("addr").port();
        l.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            let mut conns = Vec::new();
            let mut socks: Vec<TcpStream> = Vec::new();
            while !sp.load(Ordering::Acquire) {
                match l.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        if let Ok(c) = s.try_clone() {
                            socks.push(c);
                        }
                        let conn = {
                            let mut g = st.lock().unwrap();
                            g.connections += 1;
                            g.connections - 1
                        };
                        let (st, sp, script) = (st.clone(), sp.clone(), script.clone());
                        conns.push(std::thread::spawn(move || {
                            if let Err(e) = handle(s, conn, &st, &sp, &script) {
                                if !sp.load(Ordering::Acquire) {
                                    st.lock().unwrap().errors.push(format!("conn {conn}: {e}"));
                                }
                            }
                        }));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            drop(l);
            for s in &socks {
                let _ = s.shutdown(Shutdown::Both);
            }
            for c in conns {
                let _ = c.join();
            }
        });
        LogstashServer {
            port,
            state,
            stop,
            accept: Some(accept),
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn events(&self) -> Vec<Received> {
        self.state.lock().unwrap().events.clone()
    }

    pub fn windows(&self) -> Vec<WindowRec> {
        self.state.lock().unwrap().windows.clone()
    }

    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    pub fn keepalives(&self) -> usize {
        self.state.lock().unwrap().keepalives
    }

    /// Protocol violations seen (connection resets by the client are not errors).
    pub fn errors(&self) -> Vec<String> {
        self.state.lock().unwrap().errors.clone()
    }

    /// Wait until at least `n` events arrived.
    pub fn wait_events(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let ev = self.events();
            if ev.len() >= n {
                return ev;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} events at the Logstash stand-in, got {} (errors: {:?})",
                ev.len(),
                self.errors()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for LogstashServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn protocol(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// Read `count` events (J frames, possibly inside C frames) into `out` as (seq, json).
fn read_events(
    r: &mut impl Read,
    count: u32,
    out: &mut Vec<(u32, Value)>,
    compressed: &mut bool,
) -> std::io::Result<()> {
    while (out.len() as u32) < count {
        let mut hdr = [0u8; 2];
        r.read_exact(&mut hdr)?;
        if hdr[0] != b'2' {
            return Err(protocol(format!(
                "frame version {:?}, expected '2'",
                hdr[0] as char
            )));
        }
        match hdr[1] {
            b'J' => {
                let seq = read_u32(r)?;
                let len = read_u32(r)? as usize;
                let mut json = vec![0u8; len];
                r.read_exact(&mut json)?;
                let v: Value = serde_json::from_slice(&json)
                    .map_err(|e| protocol(format!("event seq {seq} is not JSON: {e}")))?;
                out.push((seq, v));
            }
            b'C' => {
                *compressed = true;
                let len = read_u32(r)? as usize;
                let mut z = vec![0u8; len];
                r.read_exact(&mut z)?;
                let mut plain = Vec::new();
                flate2::read::ZlibDecoder::new(&z[..])
                    .read_to_end(&mut plain)
                    .map_err(|e| protocol(format!("C frame is not a zlib stream: {e}")))?;
                let mut inner = &plain[..];
                read_events(&mut inner, count, out, compressed)?;
                if !inner.is_empty() {
                    return Err(protocol(format!("{} bytes left in a C frame", inner.len())));
                }
            }
            c => {
                return Err(protocol(format!(
                    "unexpected frame type {:?} in a window",
                    c as char
                )))
            }
        }
    }
    Ok(())
}

fn ack(s: &mut TcpStream, seq: u32) -> std::io::Result<()> {
    let mut b = [b'2', b'A', 0, 0, 0, 0];
    b[2..].copy_from_slice(&seq.to_be_bytes());
    s.write_all(&b)
}

fn reset(s: TcpStream) {
    // SO_LINGER 0: close sends RST, as a crashed or killed Logstash would.
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on a live socket with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

fn handle(
    mut s: TcpStream,
    conn: usize,
    st: &Mutex<State>,
    stop: &AtomicBool,
    script: &Script,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut in_conn = 0usize;
    loop {
        // Wait for the next window header, checking for stop between reads.
        let mut hdr = [0u8; 2];
        let mut got = 0;
        while got < 2 {
            if stop.load(Ordering::Acquire) {
                return Ok(());
            }
            match s.read(&mut hdr[got..]) {
                Ok(0) => return Ok(()),
                Ok(n) => got += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        if hdr != *b"2W" {
            return Err(protocol(format!(
                "expected a window frame \"2W\", got {hdr:02x?}"
            )));
        }
        let size = read_u32(&mut s)?;
        if size == 0 || size > MAX_WINDOW {
            return Err(protocol(format!(
                "window size {size} (must be 1..={MAX_WINDOW})"
            )));
        }
        let index = {
            let g = st.lock().unwrap();
            g.windows.len()
        };
        let ctx = WindowCtx {
            conn,
            index,
            in_conn,
            size,
        };
        let action = script(&ctx);
        if let Action::ResetMidWindow = action {
            let mut some = [0u8; 16];
            let _ = s.read(&mut some);
            st.lock().unwrap().windows.push(WindowRec {
                conn,
                size,
                compressed: false,
                at: Instant::now(),
            });
            reset(s);
            return Ok(());
        }
        let mut events = Vec::with_capacity(size as usize);
        let mut compressed = false;
        match read_events(&mut s, size, &mut events, &mut compressed) {
            Ok(()) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::UnexpectedEof
                    || e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
        if events.len() as u32 != size {
            return Err(protocol(format!(
                "window of {size} held {} events",
                events.len()
            )));
        }
        for (i, (seq, _)) in events.iter().enumerate() {
            if *seq != i as u32 + 1 {
                return Err(protocol(format!(
                    "event {i} of window {index} has seq {seq}, expected {}",
                    i + 1
                )));
            }
        }
        {
            let mut g = st.lock().unwrap();
            g.windows.push(WindowRec {
                conn,
                size,
                compressed,
                at: Instant::now(),
            });
            for (seq, event) in events {
                g.events.push(Received {
                    conn,
                    window: index,
                    seq,
                    event,
                });
            }
        }
        in_conn += 1;
        match action {
            Action::Ack => ack(&mut s, size)?,
            Action::Hold { hold, keepalive } => {
                let until = Instant::now() + hold;
                while Instant::now() < until {
                    if stop.load(Ordering::Acquire) {
                        return Ok(());
                    }
                    std::thread::sleep(keepalive.min(until - Instant::now()));
                    if Instant::now() < until {
                        ack(&mut s, 0)?;
                        st.lock().unwrap().keepalives += 1;
                    }
                }
                ack(&mut s, size)?;
            }
            Action::PartialThenReset(n) => {
                ack(&mut s, n.min(size))?;
                std::thread::sleep(Duration::from_millis(100));
                let _ = s.shutdown(Shutdown::Read);
                reset(s);
                return Ok(());
            }
            Action::PartialThenAck(n, pause) => {
                ack(&mut s, n.min(size))?;
                std::thread::sleep(pause);
                ack(&mut s, size)?;
            }
            Action::AckSeq(seq) => ack(&mut s, seq)?,
            Action::ResetMidWindow => unreachable!("handled above"),
        }
    }
}
