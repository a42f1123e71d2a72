//! Apache Kafka for the tests and benchmarks: a single-node KRaft broker (combined broker and
//! controller) run from the jars that `tests/run.sh` resolves with Maven (`tests/kafka/pom.xml`)
//! into `$OXIBEAT_KAFKA_CACHE/kafka-<version>/libs` (default `~/.cache/oxibeat`). The version is
//! pinned in `tests/kafka/versions.env`.
//!
//! Each broker gets a temp dir, its storage formatted with Kafka's own storage tool, free
//! 127.0.0.1 ports and a 512 MiB heap; `start` returns once it answers metadata, and the JVM
//! is killed when the value is dropped (and, as a backstop, when the test process dies: the
//! JVM is started with `PR_SET_PDEATHSIG`). The brokers `shared()` returns live for the whole
//! test process and are killed at its exit.
//!
//! A secure broker serves TLS (PEM keystores from a PKI made per broker), mutual TLS, SASL
//! PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512 (SCRAM users created at format time), and ACLs
//! (`StandardAuthorizer`, `User:admin` is the super user).
//!
//! Included by `tests/support/mod.rs` and by `benches/support/mod.rs` (`super::free_port`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use super::free_port;

/// `tests/kafka/versions.env`, the one place the Kafka versions are pinned.
const VERSIONS: &str = include_str!("../kafka/versions.env");

fn pinned(key: &str) -> String {
    VERSIONS
        .lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("tests/kafka/versions.env has no {key}="))
}

/// The newest Kafka 4.x: every Kafka test and benchmark runs on it.
pub fn version() -> String {
    pinned("KAFKA_VERSION")
}

/// The oldest 4.0.x release: the clean-delivery test runs on it too.
pub fn oldest_version() -> String {
    pinned("KAFKA_OLDEST_VERSION")
}

/// Where `tests/run.sh` put the jars of `version`. Fails, saying how to get them, when they
/// are missing: a Kafka test never passes without a broker.
pub fn libs(version: &str) -> PathBuf {
    let cache = std::env::var_os("OXIBEAT_KAFKA_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/oxibeat")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"));
    let libs = cache.join(format!("kafka-{version}")).join("libs");
    let jar = libs.join(format!("kafka_2.13-{version}.jar"));
    if !jar.is_file() {
        panic!(
            "Apache Kafka {version} is not installed: {} is missing.\n\
             tests/run.sh installs it (Java 17+ and Maven, then the jars from Maven Central):\n  \
             mvn -B -q -f tests/kafka/pom.xml -Dkafka.version={version} -Dkafka.libs={} dependency:copy-dependencies\n\
             (OXIBEAT_KAFKA_CACHE changes the cache directory, default ~/.cache/oxibeat)",
            jar.display(),
            libs.display()
        );
    }
    libs
}

/// The credentials of the test users.
pub const ADMIN: (&str, &str) = ("admin", "admin-pw-3b9e");
pub const ALICE: (&str, &str) = ("alice", "alice-pw-Shh-9f3c");

/// The listeners a broker can have, each on its own port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// Plaintext, no authentication (plain broker only).
    Plaintext,
    /// Plaintext, advertised at `proxy_port()`: clients reach it through a test proxy.
    Proxied,
    /// SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) without TLS; also the inter-broker listener.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
    /// TLS, no client certificate asked.
    Ssl,
    /// TLS with `ssl.client.auth=required`.
    Mtls,
    /// TLS with a certificate for another host name (`kafka.invalid`), signed by the test CA.
    BadName,
}

impl Listener {
    fn name(self) -> &'static str {
        match self {
            Listener::Plaintext => "PLAINTEXT",
            Listener::Proxied => "PROXIED",
            Listener::SaslPlaintext => "SASL_PLAINTEXT",
            Listener::SaslSsl => "SASL_SSL",
            Listener::Ssl => "SSL",
            Listener::Mtls => "MTLS",
            Listener::BadName => "BADNAME",
        }
    }

    fn protocol(self) -> &'static str {
        match self {
            Listener::Plaintext | Listener::Proxied => "PLAINTEXT",
            Listener::SaslPlaintext => "SASL_PLAINTEXT",
            Listener::SaslSsl => "SASL_SSL",
            Listener::Ssl | Listener::Mtls | Listener::BadName => "SSL",
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    pub version: String,
    /// TLS, mutual TLS, SASL and ACL listeners instead of a plaintext one.
    pub secure: bool,
    /// A `Proxied` listener (plain broker only).
    pub proxied: bool,
    /// `-Xmx`.
    pub heap: String,
    /// Benchmark JVM: Kafka's own JVM flags (G1, full JIT) instead of the quick-start ones.
    pub bench: bool,
    /// Pin the JVM to this core (`taskset`).
    pub core: Option<usize>,
    /// Extra `server.properties` lines.
    pub props: Vec<(String, String)>,
    /// A broker-only node of another broker's cluster (`Kafka::join`), not a cluster of its own.
    pub join: Option<Join>,
}

/// What a broker-only node needs of the cluster it joins.
#[derive(Debug, Clone)]
pub struct Join {
    node_id: u32,
    cluster_id: String,
    /// The first node's controller port: the whole quorum.
    controller: u16,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            version: version(),
            secure: false,
            proxied: false,
            heap: "512m".into(),
            bench: false,
            core: None,
            props: Vec::new(),
            join: None,
        }
    }
}

/// The test PKI of a secure broker, PEM files in its directory.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA that signed every certificate below.
    pub ca: PathBuf,
    /// Another CA, which signed nothing the broker uses.
    pub wrong_ca: PathBuf,
    /// A client certificate (CN=oxibeat-agent) and its key, for mutual TLS.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A running (or stopped, restartable) broker.
pub struct Kafka {
    pub spec: Spec,
    dir: PathBuf,
    /// Removed on drop; `None` for a shared broker, whose directory goes at process exit.
    tmp: Option<tempfile::TempDir>,
    child: Option<Child>,
    ports: HashMap<Listener, u16>,
    controller: u16,
    proxy: u16,
    cluster_id: String,
    log: PathBuf,
    pub pki: Option<Pki>,
    /// How long the last start took: format (first start only) and launch until metadata.
    pub started_in: Duration,
}

impl Kafka {
    /// Format a new broker and start it.
    pub fn start(spec: Spec) -> Kafka {
        let tmp = tempfile::Builder::new()
            .prefix("oxibeat-kafka-")
            .tempdir()
            .expect("temp dir for Kafka");
        let dir = tmp.path().to_path_buf();
        let mut listeners = if spec.secure {
            vec![
                Listener::SaslPlaintext,
                Listener::SaslSsl,
                Listener::Ssl,
                Listener::Mtls,
                Listener::BadName,
            ]
        } else {
            vec![Listener::Plaintext]
        };
        if spec.proxied {
            listeners.push(Listener::Proxied);
        }
        let ports = listeners.iter().map(|l| (*l, free_port())).collect();
        let mut k = Kafka {
            pki: spec.secure.then(|| write_pki(&dir)),
            spec,
            log: dir.join("broker.log"),
            dir,
            tmp: Some(tmp),
            child: None,
            ports,
            controller: free_port(),
            proxy: free_port(),
            cluster_id: cluster_id(),
            started_in: Duration::ZERO,
        };
        if let Some(j) = &k.spec.join {
            k.cluster_id = j.cluster_id.clone();
        }
        let t = Instant::now();
        k.write_config();
        k.format();
        k.launch();
        k.started_in = t.elapsed();
        k
    }

    /// Start a second, broker-only node (`process.roles=broker`, node id `node_id`) in this
    /// broker's cluster: formatted with the same cluster id, this node's controller as its
    /// quorum. Plaintext only. Topics can then place partitions on either node
    /// (`create_topic_on`), and stopping one node leaves the other's partitions served.
    pub fn join(&self, node_id: u32) -> Kafka {
        assert!(
            !self.spec.secure && self.spec.join.is_none(),
            "only a plaintext first node takes another node"
        );
        assert_ne!(node_id, 1, "node 1 is the first node");
        Kafka::start(Spec {
            version: self.spec.version.clone(),
            heap: self.spec.heap.clone(),
            join: Some(Join {
                node_id,
                cluster_id: self.cluster_id.clone(),
                controller: self.controller,
            }),
            ..Spec::default()
        })
    }

    /// `127.0.0.1:<port>` of a listener (the address clients bootstrap from).
    pub fn addr(&self, l: Listener) -> String {
        let port = match l {
            Listener::Proxied => self.proxy,
            _ => *self
                .ports
                .get(&l)
                .unwrap_or_else(|| panic!("this broker has no {l:?} listener")),
        };
        format!("127.0.0.1:{port}")
    }

    /// The port a test proxy must listen on to serve the `Proxied` listener, and the port it
    /// forwards to.
    pub fn proxy_ports(&self) -> (u16, u16) {
        (self.proxy, self.ports[&Listener::Proxied])
    }

    /// The listener the tests themselves use (as the super user on a secure broker).
    pub fn bootstrap(&self) -> String {
        self.addr(if self.spec.secure {
            Listener::SaslPlaintext
        } else {
            Listener::Plaintext
        })
    }

    /// librdkafka settings for the test's own clients: bootstrap and, on a secure broker, the
    /// super user's credentials.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap());
        for (k, v) in self.client_props() {
            c.set(k, v);
        }
        c
    }

    fn client_props(&self) -> Vec<(&'static str, String)> {
        if self.spec.secure {
            vec![
                ("security.protocol", "sasl_plaintext".into()),
                ("sasl.mechanism", "PLAIN".into()),
                ("sasl.username", ADMIN.0.into()),
                ("sasl.password", ADMIN.1.into()),
            ]
        } else {
            Vec::new()
        }
    }

    /// The broker's data directory (`log.dirs`): one directory per topic partition.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn write_config(&self) {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: String| p.push((k.to_string(), v));
        let (node_id, controller) = match &self.spec.join {
            Some(j) => (j.node_id, j.controller),
            None => (1, self.controller),
        };
        set(
            "process.roles",
            if self.spec.join.is_some() {
                "broker"
            } else {
                "broker,controller"
            }
            .into(),
        );
        set("node.id", node_id.to_string());
        set(
            "controller.quorum.voters",
            format!("1@127.0.0.1:{controller}"),
        );
        set("controller.listener.names", "CONTROLLER".into());
        let mut listeners = Vec::new();
        if self.spec.join.is_none() {
            listeners.push(format!("CONTROLLER://127.0.0.1:{}", self.controller));
        }
        let mut advertised = Vec::new();
        let mut map = vec![format!(
            "CONTROLLER:{}",
            if self.spec.secure {
                "SASL_PLAINTEXT"
            } else {
                "PLAINTEXT"
            }
        )];
        let mut names: Vec<&Listener> = self.ports.keys().collect();
        names.sort_by_key(|l| l.name());
        for l in names {
            let port = self.ports[l];
            listeners.push(format!("{}://127.0.0.1:{port}", l.name()));
            let adv = if *l == Listener::Proxied {
                self.proxy
            } else {
                port
            };
            advertised.push(format!("{}://127.0.0.1:{adv}", l.name()));
            map.push(format!("{}:{}", l.name(), l.protocol()));
        }
        set("listeners", listeners.join(","));
        set("advertised.listeners", advertised.join(","));
        set("listener.security.protocol.map", map.join(","));
        set("log.dirs", self.data_dir().display().to_string());
        set("num.partitions", "1".into());
        set("default.replication.factor", "1".into());
        set("offsets.topic.replication.factor", "1".into());
        set("offsets.topic.num.partitions", "3".into());
        set("transaction.state.log.replication.factor", "1".into());
        set("transaction.state.log.min.isr", "1".into());
        set(
            "share.coordinator.state.topic.replication.factor",
            "1".into(),
        );
        set("share.coordinator.state.topic.min.isr", "1".into());
        set("group.initial.rebalance.delay.ms", "0".into());
        // Topics exist only when a test creates them: an unknown topic is a real error.
        set("auto.create.topics.enable", "false".into());
        if !self.spec.bench {
            // A restarted controller waits out the old broker session before it takes the
            // broker's registration back (9 s by default).
            set("broker.session.timeout.ms", "3000".into());
            set("broker.heartbeat.interval.ms", "500".into());
            set("num.network.threads", "2".into());
            set("num.io.threads", "2".into());
            set("background.threads", "2".into());
            set("log.cleaner.threads", "1".into());
        }
        if self.spec.secure {
            let jaas_plain = |client: bool, users: &[(&str, &str)]| {
                let mut s =
                    "org.apache.kafka.common.security.plain.PlainLoginModule required".to_string();
                if client {
                    s.push_str(&format!(
                        " username=\"{}\" password=\"{}\"",
                        ADMIN.0, ADMIN.1
                    ));
                }
                for (u, pw) in users {
                    s.push_str(&format!(" user_{u}=\"{pw}\""));
                }
                s + ";"
            };
            let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
            set("inter.broker.listener.name", "SASL_PLAINTEXT".into());
            set("sasl.mechanism.inter.broker.protocol", "PLAIN".into());
            set("sasl.mechanism.controller.protocol", "PLAIN".into());
            set(
                "sasl.enabled.mechanisms",
                "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".into(),
            );
            set(
                "listener.name.controller.sasl.enabled.mechanisms",
                "PLAIN".into(),
            );
            set(
                "listener.name.controller.plain.sasl.jaas.config",
                jaas_plain(true, &[ADMIN]),
            );
            for l in ["sasl_plaintext", "sasl_ssl"] {
                set(
                    &format!("listener.name.{l}.plain.sasl.jaas.config"),
                    jaas_plain(l == "sasl_plaintext", &[ADMIN, ALICE]),
                );
                for m in ["scram-sha-256", "scram-sha-512"] {
                    set(
                        &format!("listener.name.{l}.{m}.sasl.jaas.config"),
                        scram.into(),
                    );
                }
            }
            let d = |f: &str| self.dir.join(f).display().to_string();
            set("ssl.keystore.type", "PEM".into());
            set("ssl.keystore.location", d("server.pem"));
            set("ssl.truststore.type", "PEM".into());
            set("ssl.truststore.location", d("ca.pem"));
            set("ssl.client.auth", "none".into());
            set("listener.name.mtls.ssl.client.auth", "required".into());
            set("listener.name.badname.ssl.keystore.type", "PEM".into());
            set(
                "listener.name.badname.ssl.keystore.location",
                d("badname.pem"),
            );
            set(
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
            );
            set("super.users", format!("User:{}", ADMIN.0));
            // Topics with no ACL stay open (the TLS listeners' principals need no grants);
            // a topic with an ACL admits only whom it names.
            set("allow.everyone.if.no.acl.found", "true".into());
        } else {
            set("inter.broker.listener.name", "PLAINTEXT".into());
        }
        for (k, v) in &self.spec.props {
            p.retain(|(pk, _)| pk != k);
            p.push((k.clone(), v.clone()));
        }
        let text: String = p.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        fs::write(self.dir.join("server.properties"), text).expect("write server.properties");
        // For Kafka's command-line tools (kafka-acls) as the super user.
        if self.spec.secure {
            fs::write(
                self.dir.join("admin.properties"),
                format!(
                    "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"{}\" password=\"{}\";\n",
                    ADMIN.0, ADMIN.1
                ),
            )
            .expect("write admin.properties");
        }
    }

    fn java(&self, heap: &str) -> Command {
        let mut cmd = match self.spec.core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &core.to_string(), "java"]);
                c
            }
            None => Command::new("java"),
        };
        cmd.arg(format!("-Xmx{heap}"));
        if self.spec.bench {
            // kafka-run-class.sh's KAFKA_JVM_PERFORMANCE_OPTS.
            cmd.args([
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-XX:InitiatingHeapOccupancyPercent=35",
                "-XX:+ExplicitGCInvokesConcurrent",
            ]);
        } else {
            // Quick start on 2 cores: the client JIT only and one GC thread.
            cmd.args(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]);
        }
        cmd.args([
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
        ]);
        cmd.arg("-cp")
            .arg(format!("{}/*", libs(&self.spec.version).display()));
        cmd
    }

    /// `kafka-storage.sh format`, with the SCRAM users on a secure broker.
    fn format(&self) {
        let mut cmd = self.java("256m");
        cmd.args(["kafka.tools.StorageTool", "format", "--ignore-formatted"])
            // `=`: a random id may start with `-`, which the tool's parser takes for an option.
            .arg(format!("--cluster-id={}", self.cluster_id))
            .arg("--config")
            .arg(self.dir.join("server.properties"));
        if self.spec.secure {
            for mech in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
                for (u, pw) in [ADMIN, ALICE] {
                    cmd.arg("--add-scram")
                        .arg(format!("{mech}=[name={u},password={pw}]"));
                }
            }
        }
        let out = cmd.output().expect("run java (Java 17+ must be on PATH)");
        if !out.status.success() {
            panic!(
                "formatting Kafka's storage failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Start the JVM on the formatted directory and wait until it answers metadata.
    fn launch(&mut self) {
        assert!(self.child.is_none(), "the broker is running already");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("broker log file");
        let mut cmd = self.java(&self.spec.heap.clone());
        cmd.arg("kafka.Kafka")
            .arg(self.dir.join("server.properties"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        self.child = Some(spawn_kept(cmd).expect("start the Kafka JVM"));
        self.wait_ready(Duration::from_secs(90));
    }

    fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let client: BaseConsumer = self
            .client_config()
            .set("socket.connection.setup.timeout.ms", "1000")
            .create()
            .expect("metadata client");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "Kafka {} exited while starting ({status}); log tail:\n{}",
                        self.spec.version,
                        self.log_tail(40)
                    );
                }
            }
            if client
                .fetch_metadata(None, Duration::from_millis(1000))
                .is_ok_and(|md| !md.brokers().is_empty())
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "Kafka {} did not answer metadata within {limit:?}; log tail:\n{}",
                    self.spec.version,
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop the JVM gracefully (SIGTERM) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: a signal to our own child process.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            while matches!(child.try_wait(), Ok(None)) {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.wait();
        }
    }

    /// Kill the JVM (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the JVM again on the same data directory and ports.
    pub fn restart(&mut self) {
        let t = Instant::now();
        self.launch();
        self.started_in = t.elapsed();
    }

    /// The JVM's pid (for pinning or memory figures), if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.client_config().create().expect("admin client")
    }

    /// Create a topic with topic-level `configs` and wait until the broker's metadata lists
    /// it with a leader for every partition.
    pub fn create_topic(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        self.create(&topic);
    }

    /// Create a topic whose partition `i` has the replicas `replicas[i]` (node ids), and wait
    /// until every partition has a leader.
    pub fn create_topic_on(&self, name: &str, replicas: &[&[i32]]) {
        let n = replicas.len() as i32;
        self.create(&NewTopic::new(
            name,
            n,
            TopicReplication::Variable(replicas),
        ));
    }

    fn create(&self, topic: &NewTopic<'_>) {
        let name = topic.name;
        let res = block_on(self.admin().create_topics([topic], &AdminOptions::new()))
            .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
        for r in res {
            if let Err((t, e)) = r {
                panic!("create topic {t}: {e}");
            }
        }
        self.wait_topic(name, topic.num_partitions);
    }

    /// The leader (node id, -1 for none) of each partition of `topic`, as metadata says.
    pub fn leaders(&self, topic: &str) -> Vec<i32> {
        let client: BaseConsumer = self.client_config().create().expect("metadata client");
        let md = client
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("metadata of {topic}: {e}"));
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .unwrap_or_else(|| panic!("{topic} missing from metadata"));
        let mut parts: Vec<(i32, i32)> = t
            .partitions()
            .iter()
            .map(|p| (p.id(), p.leader()))
            .collect();
        parts.sort_unstable();
        parts.into_iter().map(|(_, l)| l).collect()
    }

    fn wait_topic(&self, name: &str, partitions: i32) {
        let client: BaseConsumer = self.client_config().create().expect("metadata client");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .ok()
                .is_some_and(|md| {
                    md.topics().iter().any(|t| {
                        t.name() == name
                            && t.error().is_none()
                            && t.partitions().len() == partitions as usize
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
                });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "topic {name} has no leaders after 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Set topic-level configs (replacing the topic's other overrides).
    pub fn alter_topic(&self, name: &str, configs: &[(&str, &str)]) {
        let admin = self.admin();
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(name));
        for (k, v) in configs {
            alter = alter.set(k, v);
        }
        let res = block_on(admin.alter_configs([&alter], &AdminOptions::new()))
            .unwrap_or_else(|e| panic!("alter topic {name}: {e}"));
        for r in res {
            if let Err((_, e)) = r {
                panic!("alter topic {name}: {e}");
            }
        }
    }

    /// `kafka-acls.sh --bootstrap-server … --command-config <super user> <args>`.
    pub fn acls(&self, args: &[&str]) {
        assert!(self.spec.secure, "ACLs need a secure broker");
        let mut cmd = self.java("256m");
        cmd.arg("org.apache.kafka.tools.AclCommand")
            .args(["--bootstrap-server", &self.bootstrap()])
            .arg("--command-config")
            .arg(self.dir.join("admin.properties"))
            .args(args);
        let out = cmd.output().expect("run kafka-acls");
        assert!(
            out.status.success(),
            "kafka-acls {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The compression codec of every record batch in partition 0 of `topic`, read from the
    /// broker's log segments (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn batch_codecs(&self, topic: &str) -> Vec<u8> {
        let dir = self.data_dir().join(format!("{topic}-0"));
        let mut segments: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        segments.sort();
        let mut codecs = Vec::new();
        for seg in segments {
            let mut f = fs::File::open(&seg).expect("open segment");
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let mut pos = 0u64;
            // Record batch header: baseOffset i64, batchLength i32, partitionLeaderEpoch i32,
            // magic i8, crc u32, attributes i16 (codec in the low 3 bits), ...
            let mut head = [0u8; 23];
            while pos + 23 <= len {
                f.seek(SeekFrom::Start(pos)).expect("seek");
                if f.read_exact(&mut head).is_err() {
                    break;
                }
                let batch_len = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
                if batch_len <= 0 {
                    break;
                }
                assert_eq!(head[16], 2, "record batch magic in {}", seg.display());
                codecs.push(head[22] & 0x07);
                pos += 12 + batch_len as u64;
            }
        }
        codecs
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Which shared broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    /// The newest Kafka, plaintext, with a `Proxied` listener.
    Plain,
    /// The newest Kafka with TLS, mutual TLS, SASL and ACLs.
    Secure,
}

/// A broker shared by the tests of this process (started on first use, killed at exit).
/// Tests on it isolate themselves by topic names.
pub fn shared(kind: Shared) -> &'static Kafka {
    static PLAIN: OnceLock<Kafka> = OnceLock::new();
    static SECURE: OnceLock<Kafka> = OnceLock::new();
    let cell = match kind {
        Shared::Plain => &PLAIN,
        Shared::Secure => &SECURE,
    };
    cell.get_or_init(|| {
        let mut k = Kafka::start(Spec {
            secure: kind == Shared::Secure,
            proxied: kind == Shared::Plain,
            ..Spec::default()
        });
        eprintln!(
            "shared Kafka {} ({kind:?}) ready in {:.1} s",
            k.spec.version,
            k.started_in.as_secs_f64()
        );
        let pid = k.pid().expect("running");
        // Statics are never dropped: the directory goes with the JVM at exit.
        let tmp = k.tmp.take().map(tempfile::TempDir::keep);
        at_exit(pid, tmp);
        k
    })
}

/// Kill `pid` and remove `dir` when the test process exits.
fn at_exit(pid: u32, dir: Option<PathBuf>) {
    static LIST: Mutex<Vec<(u32, Option<PathBuf>)>> = Mutex::new(Vec::new());
    static REGISTER: OnceLock<()> = OnceLock::new();
    extern "C" fn cleanup() {
        let list = std::mem::take(&mut *LIST.lock().unwrap_or_else(|e| e.into_inner()));
        for (pid, dir) in list {
            // SAFETY: signals and waits for our own children.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
                libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
            }
            if let Some(d) = dir {
                let _ = fs::remove_dir_all(d);
            }
        }
    }
    LIST.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((pid, dir));
    REGISTER.get_or_init(|| {
        // SAFETY: registers a plain extern "C" function.
        unsafe {
            libc::atexit(cleanup);
        }
    });
}

/// Spawn from one long-lived thread, with `PR_SET_PDEATHSIG`: the kernel kills the JVM when
/// that thread (so the test process) dies, even by a signal that skips every destructor.
/// (The signal follows the spawning thread, so test threads, which end, must not spawn.)
fn spawn_kept(cmd: Command) -> io::Result<Child> {
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("kafka-keeper".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    use std::os::unix::process::CommandExt;
                    // SAFETY: prctl is async-signal-safe; it runs in the child before exec.
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("keeper thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    keeper
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .map_err(|_| io::Error::other("keeper thread gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("keeper thread gone"))?
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A random KRaft cluster id (Kafka's `Uuid`: 16 bytes, URL-safe base64 without padding).
fn cluster_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

/// The secure broker's PKI, PEM files in `dir`: a CA and, signed by it, the broker's
/// certificate for 127.0.0.1 and localhost, one for `kafka.invalid` (the `BadName`
/// listener), and a client certificate; plus a CA that signed nothing.
fn write_pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let new_ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("oxibeat test CA {name}"));
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate")
    };
    let ca = new_ca("kafka");
    let wrong = new_ca("wrong");
    let leaf = |sans: Vec<String>, cn: &str| {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(sans).expect("certificate params");
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &ca).expect("certificate");
        (cert.pem(), key.serialize_pem())
    };
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        fs::write(&p, text).expect("write PKI file");
        p
    };
    let ca_path = write("ca.pem", ca.pem());
    let wrong_path = write("wrong-ca.pem", wrong.pem());
    // Kafka's PEM keystore: the private key (PKCS#8) followed by the certificate chain.
    let (cert, key) = leaf(vec!["127.0.0.1".into(), "localhost".into()], "kafka");
    write("server.pem", format!("{key}{cert}"));
    let (cert, key) = leaf(vec!["kafka.invalid".into()], "kafka.invalid");
    write("badname.pem", format!("{key}{cert}"));
    let (cert, key) = leaf(Vec::new(), "oxibeat-agent");
    Pki {
        ca: ca_path,
        wrong_ca: wrong_path,
        client_cert: write("client.pem", cert),
        client_key: write("client.key", key),
    }
}
