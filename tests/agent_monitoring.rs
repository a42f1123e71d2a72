//! A running agent with a file input, the system metrics input and the monitoring endpoint:
//! counters move as files are shipped, metric events arrive in the output.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

fn wait_http(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "monitoring endpoint never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn endpoint_counters_follow_shipping_and_metrics_are_delivered() {
    let w = Workspace::new();
    let log = w.logs().join("m.log");
    append(&log, &seq_lines("mon", 0..100));
    let port = free_port();
    let inputs = format!(
        "{}\n[[inputs]]\ntype = \"system/metrics\"\nid = \"host\"\nperiod = \"1s\"\nmetricsets = [\"cpu\", \"memory\", \"load\"]\n\n[http]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\n",
        w.input("files", "*.log", "")
    );
    let cfg = w.config(&inputs);
    let mut agent = w.spawn(&cfg);
    wait_http(port);
    w.wait_events(100, 20);
    let acked = |port| -> u64 {
        let (code, body) = get(port, "/stats");
        assert_eq!(code, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        v["libbeat"]["output"]["events"]["acked"].as_u64().unwrap()
    };
    let first = acked(port);
    assert!(first >= 100, "acked {first}");
    append(&log, &seq_lines("mon", 100..300));
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked(port) < first + 200 {
        assert!(Instant::now() < deadline, "counters did not move");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, body) = get(port, "/inputs/");
    assert_eq!(code, 200);
    assert!(
        body.contains("\"files\"") && body.contains("filestream"),
        "{body}"
    );
    let (code, body) = get(port, "/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("libbeat_output_events_acked"), "{body}");
    let (code, _) = get(port, "/nope");
    assert_eq!(code, 404);
    let (code, body) = get(port, "/");
    assert_eq!(code, 200);
    assert!(body.contains("oxibeat"));
    // Metric events (cpu needs two samples: the first comes one period after start).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ev = w.events();
        let datasets: Vec<&str> = ev
            .iter()
            .filter_map(|e| e["event"]["dataset"].as_str())
            .collect();
        if ["system.cpu", "system.memory", "system.load"]
            .iter()
            .all(|d| datasets.contains(d))
        {
            let mem = ev
                .iter()
                .find(|e| e["event"]["dataset"] == "system.memory")
                .unwrap();
            assert!(mem["system"]["memory"]["total"].as_u64().unwrap() > 0);
            assert_eq!(mem["metricset"]["name"], "memory");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metric events missing: {datasets:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, err) = agent.stop();
    assert!(ok, "{err}");
    assert_complete(seqs(&w.events(), "mon"), 300, "monitored run");
}
