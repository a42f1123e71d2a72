//! systemd's notification protocol (sd_notify(3)) without libsystemd: datagrams of
//! `KEY=VALUE` lines sent to the socket named by `$NOTIFY_SOCKET` (a path, or `@name` for
//! the abstract namespace).
//!
//! The agent sends `READY=1` once the registry is loaded and the inputs and the output have
//! started, `STATUS=` with a one-line summary, `WATCHDOG=1` at half of `$WATCHDOG_USEC` while
//! the pipeline is healthy, `STOPPING=1` on SIGTERM, and `RELOADING=1` + `MONOTONIC_USEC=`
//! then `READY=1` around a reload (what `Type=notify-reload` expects).
//!
//! The watchdog pings only while (a) the agent's event loop beats (the main loop that
//! handles signals and reloads ticks a `Heartbeat`), and (b) the pipeline is alive: nothing
//! is in flight, or events were taken, confirmed or retried recently, or an output waits
//! between retries on purpose (`monitoring::liveness`). A hung output or a stuck event loop
//! stops the pings, and systemd restarts the service after `WatchdogSec`.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::monitoring::{liveness, Metrics};

#[derive(Debug, Clone)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

/// Sends notifications to systemd; does nothing when not started by systemd.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    socket: Option<UnixDatagram>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` (unset: every call is a no-op).
    pub fn from_env() -> Notifier {
        Self::new(std::env::var_os("NOTIFY_SOCKET").map(PathBuf::from))
    }

    /// A notifier for `socket` (`None`: disabled).
    pub fn new(socket: Option<PathBuf>) -> Notifier {
        use std::os::unix::ffi::OsStrExt;
        let target = socket.and_then(|p| {
            let bytes = p.as_os_str().as_bytes();
            match bytes.first() {
                Some(b'@') => Some(Target::Abstract(bytes[1..].to_vec())),
                Some(b'/') => Some(Target::Path(p)),
                // sd_notify ignores anything else (vsock addresses are not supported here).
                _ => None,
            }
        });
        let socket = target.as_ref().and_then(|_| UnixDatagram::unbound().ok());
        Notifier { target, socket }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some() && self.socket.is_some()
    }

    /// Send one notification (newline-separated assignments). Failures are logged at debug
    /// level: a missing listener must never stop the agent.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.try_send(state) {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }

    fn try_send(&self, state: &str) -> io::Result<()> {
        let (Some(target), Some(sock)) = (&self.target, &self.socket) else {
            return Ok(());
        };
        match target {
            Target::Path(p) => sock.send_to(state.as_bytes(), p).map(|_| ()),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(state.as_bytes(), &addr).map(|_| ())
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=Stopping: draining in-flight events");
    }

    /// Before a reload; `ready` again when it is done (also when it was refused).
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=Reloading the configuration",
            monotonic_usec()
        ));
    }
}

/// A status value is one line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// CLOCK_MONOTONIC in microseconds, as `MONOTONIC_USEC=` wants it.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct passed in.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// The ping interval asked for by systemd: half of `$WATCHDOG_USEC`, if `$WATCHDOG_PID` is
/// unset or names this process.
pub fn watchdog_interval_from_env() -> Option<Duration> {
    watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(me) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

/// Beaten by the agent's main loop; stale when that loop stopped running.
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    pub fn new() -> Arc<Heartbeat> {
        Arc::new(Heartbeat::default())
    }

    pub fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    pub fn age(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// What the supervisor reports and watches.
pub struct Supervisor {
    pub notifier: Arc<Notifier>,
    pub metrics: Arc<Metrics>,
    pub heartbeat: Arc<Heartbeat>,
    /// `kafka`, `file`, ...
    pub output: String,
    /// Number of inputs running (updated on reload).
    pub inputs: Arc<AtomicU64>,
    /// `Some(interval)`: send `WATCHDOG=1` this often while healthy.
    pub watchdog: Option<Duration>,
    /// How often `STATUS=` is refreshed without a watchdog.
    pub status_every: Duration,
}

/// Why the watchdog is not pinged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unhealthy {
    EventLoop(Duration),
    Output { idle: Duration, in_flight: i64 },
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unhealthy::EventLoop(d) => write!(f, "event loop not responding for {}s", d.as_secs()),
            Unhealthy::Output { idle, in_flight } => write!(
                f,
                "output made no progress for {}s with {in_flight} events in flight",
                idle.as_secs()
            ),
        }
    }
}

/// Tracks when the pipeline last moved.
struct Progress {
    activity: u64,
    since: Instant,
}

impl Supervisor {
    /// How long without progress counts as stalled: systemd's whole watchdog timeout.
    fn stall_after(&self) -> Duration {
        self.watchdog
            .map(|i| i * 2)
            .unwrap_or(Duration::from_secs(60))
            .max(Duration::from_millis(500))
    }

    fn check(&self, p: &mut Progress, now: Instant) -> Result<(), Unhealthy> {
        let act = liveness::activity();
        if act != p.activity {
            p.activity = act;
            p.since = now;
        }
        let stall = self.stall_after();
        let age = self.heartbeat.age();
        if age >= stall {
            return Err(Unhealthy::EventLoop(age));
        }
        let in_flight = self.metrics.gauges.pipeline_active.load(Ordering::Relaxed);
        let idle = now.duration_since(p.since);
        if in_flight > 0 && !liveness::waiting() && idle >= stall {
            // Nothing moved for a whole watchdog period although events wait.
            return Err(Unhealthy::Output { idle, in_flight });
        }
        Ok(())
    }

    fn status_line(&self, rate: f64, health: &Result<(), Unhealthy>) -> String {
        let g = &self.metrics.gauges;
        let files = g.open_files.load(Ordering::Relaxed);
        let in_flight = g.pipeline_active.load(Ordering::Relaxed);
        let output = match health {
            Err(u) => format!("stalled ({u})"),
            Ok(()) if liveness::waiting() => "retrying".to_string(),
            Ok(()) if in_flight > 0 => format!("ok, {in_flight} in flight"),
            Ok(()) => "ok".to_string(),
        };
        format!(
            "Running: {} inputs, {files} files open, {rate:.0} events/s, output {}: {output}",
            self.inputs.load(Ordering::Relaxed),
            self.output
        )
    }

    fn delivered(&self) -> u64 {
        let c = &self.metrics.counters;
        c.output_acked.load(Ordering::Relaxed) + c.output_dropped.load(Ordering::Relaxed)
    }

    /// Refresh `STATUS=` and ping the watchdog until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let every = match self.watchdog {
            Some(i) => i.min(self.status_every),
            None => self.status_every,
        }
        .max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut progress = Progress {
            activity: liveness::activity(),
            since: Instant::now(),
        };
        let mut last = (Instant::now(), self.delivered());
        let mut last_status = String::new();
        let mut status_at = Instant::now();
        let mut was_healthy = true;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let health = self.check(&mut progress, now);
            let delivered = self.delivered();
            let secs = now.duration_since(last.0).as_secs_f64();
            let rate = if secs > 0.0 {
                delivered.saturating_sub(last.1) as f64 / secs
            } else {
                0.0
            };
            if now.duration_since(last.0) >= self.status_every.min(Duration::from_secs(10)) {
                last = (now, delivered);
            }
            let status = self.status_line(rate, &health);
            if status != last_status || now.duration_since(status_at) >= self.status_every {
                self.notifier.status(&status);
                last_status = status;
                status_at = now;
            }
            match &health {
                Ok(()) => {
                    if self.watchdog.is_some() {
                        self.notifier.watchdog();
                    }
                    if !was_healthy {
                        tracing::info!("pipeline moves again; systemd watchdog pings resumed");
                    }
                    was_healthy = true;
                }
                Err(why) => {
                    if was_healthy && self.watchdog.is_some() {
                        tracing::error!(reason = %why, "not pinging the systemd watchdog: systemd will restart the service unless this clears");
                    }
                    was_healthy = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Listener {
        sock: UnixDatagram,
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    fn listener() -> Listener {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Listener {
            sock,
            _dir: dir,
            path,
        }
    }

    fn recv(l: &Listener) -> Option<String> {
        let mut buf = [0u8; 4096];
        l.sock
            .recv(&mut buf)
            .ok()
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[test]
    fn messages_reach_a_real_socket() {
        let l = listener();
        let n = Notifier::new(Some(l.path.clone()));
        assert!(n.enabled());
        n.ready("Running: 1 inputs\nsecond line");
        assert_eq!(
            recv(&l).unwrap(),
            "READY=1\nSTATUS=Running: 1 inputs second line"
        );
        n.reloading();
        let r = recv(&l).unwrap();
        let mut lines = r.lines();
        assert_eq!(lines.next(), Some("RELOADING=1"));
        let usec: u64 = lines
            .next()
            .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
            .and_then(|v| v.parse().ok())
            .expect("MONOTONIC_USEC");
        assert!(usec.abs_diff(monotonic_usec()) < 5_000_000);
        n.stopping();
        assert!(recv(&l).unwrap().starts_with("STOPPING=1\n"));
    }

    #[test]
    fn abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("oxibeat-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Notifier::new(Some(PathBuf::from(format!("@{name}")))).watchdog();
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn disabled_without_socket_and_never_fails() {
        let n = Notifier::new(None);
        assert!(!n.enabled());
        n.ready("x");
        // A socket path nobody listens on: logged, not an error.
        Notifier::new(Some(PathBuf::from("/nonexistent/notify.sock"))).ready("x");
        assert!(!Notifier::new(Some(PathBuf::from("relative"))).enabled());
    }

    #[test]
    fn watchdog_env_rules() {
        assert_eq!(
            watchdog_interval(Some("2000000"), None, 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            watchdog_interval(Some("2000000"), Some("7"), 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(watchdog_interval(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    /// The watchdog pings at its interval while the event loop beats, and stops as soon as
    /// the loop stops beating; STATUS says why.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_event_loop_stops_the_pings() {
        let l = listener();
        let heartbeat = Heartbeat::new();
        heartbeat.beat();
        let interval = Duration::from_millis(100);
        let sup = Supervisor {
            notifier: Arc::new(Notifier::new(Some(l.path.clone()))),
            metrics: Metrics::new(),
            heartbeat: heartbeat.clone(),
            output: "discard".into(),
            inputs: Arc::new(AtomicU64::new(1)),
            watchdog: Some(interval),
            status_every: Duration::from_secs(60),
        };
        let beating = CancellationToken::new();
        let beater = {
            let (hb, stop) = (heartbeat.clone(), beating.clone());
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    hb.beat();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(sup.run(stop.clone()));
        let sock = Arc::new(l.sock.try_clone().unwrap());
        let recv_for = move |d: Duration| {
            let deadline = Instant::now() + d;
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while Instant::now() < deadline {
                sock.set_read_timeout(Some(deadline - Instant::now() + Duration::from_millis(1)))
                    .unwrap();
                if let Ok(n) = sock.recv(&mut buf) {
                    got.push((
                        Instant::now(),
                        String::from_utf8_lossy(&buf[..n]).into_owned(),
                    ));
                }
            }
            got
        };
        let healthy = tokio::task::spawn_blocking({
            let r = recv_for.clone();
            move || r(Duration::from_millis(1000))
        })
        .await
        .unwrap();
        let pings: Vec<Instant> = healthy
            .iter()
            .filter(|(_, m)| m == "WATCHDOG=1")
            .map(|(t, _)| *t)
            .collect();
        assert!(pings.len() >= 5, "pings while healthy: {healthy:?}");
        // The interval between pings is the watchdog interval (not faster).
        for w in pings.windows(2) {
            let gap = w[1].duration_since(w[0]);
            assert!(gap >= Duration::from_millis(60), "pings {gap:?} apart");
        }
        assert!(
            healthy[0].1.starts_with("STATUS=Running: 1 inputs"),
            "{healthy:?}"
        );

        // The event loop stops: within one watchdog timeout the pings stop.
        beating.cancel();
        beater.await.unwrap();
        let stalled = tokio::task::spawn_blocking(move || recv_for(Duration::from_millis(1200)))
            .await
            .unwrap();
        let cut = stalled
            .iter()
            .position(|(_, m)| m.contains("event loop not responding"))
            .unwrap_or_else(|| panic!("no stall status: {stalled:?}"));
        assert!(
            stalled[cut..].iter().all(|(_, m)| m != "WATCHDOG=1"),
            "pinged after the stall: {stalled:?}"
        );
        stop.cancel();
        task.await.unwrap();
    }
}
