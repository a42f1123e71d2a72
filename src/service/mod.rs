//! Running as a host service under systemd: readiness, status and watchdog notifications.

pub mod notify;
