//! Connections to Logstash: TCP (all addresses a name resolves to, in turn), optionally
//! through a SOCKS5 proxy (RFC 1928, username/password auth of RFC 1929, as Filebeat's
//! `proxy_url`), then TLS with rustls (`crate::output::tls`). Each step is bounded by
//! `timeout`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::config::{Host, ProxyConfig};

/// A connected byte stream, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub struct Connected {
    pub stream: Box<dyn Io>,
    /// The address the TCP connection went to (the proxy's, through a proxy).
    pub peer: SocketAddr,
    pub tls: Option<TlsInfo>,
}

/// What the TLS handshake settled, for logs and `oxibeat test output`.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    /// SHA-256 of the server's leaf certificate, hex with colons.
    pub peer_sha256: Option<String>,
    pub chain_len: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
    #[error("connecting to {0} failed: {1}")]
    Tcp(String, String),
    #[error("{0} timed out after {1:?}")]
    Timeout(&'static str, Duration),
    #[error("SOCKS5 proxy {0}: {1}")]
    Proxy(String, String),
    #[error("TLS handshake with {0} failed: {1}")]
    Tls(String, String),
}

pub struct Connector {
    pub timeout: Duration,
    pub proxy: Option<ProxyConfig>,
    pub tls: Option<tokio_rustls::TlsConnector>,
}

impl Connector {
    pub fn new(
        timeout: Duration,
        proxy: Option<ProxyConfig>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        Connector {
            timeout,
            proxy,
            tls: tls.map(tokio_rustls::TlsConnector::from),
        }
    }

    pub async fn connect(&self, host: &Host) -> Result<Connected, ConnectError> {
        let t = self.timeout;
        let (tcp, peer) = match &self.proxy {
            None => bounded(t, "connect", tcp_connect(&host.name, host.port)).await?,
            Some(p) => bounded(t, "connect through the SOCKS5 proxy", socks5(p, host)).await?,
        };
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Connected {
                stream: Box::new(tcp),
                peer,
                tls: None,
            });
        };
        let name = match host.name.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.name.clone())
                .map_err(|e| ConnectError::Tls(host.to_string(), e.to_string()))?,
        };
        let stream = bounded(t, "TLS handshake", async {
            tls.connect(name, tcp)
                .await
                .map_err(|e| ConnectError::Tls(host.to_string(), e.to_string()))
        })
        .await?;
        let (_, conn) = stream.get_ref();
        let certs = conn.peer_certificates().unwrap_or_default();
        let info = TlsInfo {
            version: conn
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            cipher: conn
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()))
                .unwrap_or_default(),
            peer_sha256: certs.first().map(|c| fingerprint(c.as_ref())),
            chain_len: certs.len(),
        };
        Ok(Connected {
            stream: Box::new(stream),
            peer,
            tls: Some(info),
        })
    }
}

fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(der);
    d.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

async fn bounded<T>(
    limit: Duration,
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, ConnectError>>,
) -> Result<T, ConnectError> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| ConnectError::Timeout(what, limit))?
}

async fn resolve(name: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| ConnectError::Resolve(name.to_string(), e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(ConnectError::Resolve(
            name.to_string(),
            "no address".to_string(),
        ));
    }
    Ok(addrs)
}

/// Every address of `name`, in turn, until one accepts.
async fn tcp_connect(name: &str, port: u16) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let mut last = String::new();
    for addr in resolve(name, port).await? {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok((s, addr)),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(ConnectError::Tcp(format!("{name}:{port}"), last))
}

/// RFC 1928 CONNECT through `proxy` to `target`, with RFC 1929 username/password when set.
async fn socks5(
    proxy: &ProxyConfig,
    target: &Host,
) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let shown = proxy.host.to_string();
    let err = |m: String| ConnectError::Proxy(shown.clone(), m);
    let io = |e: std::io::Error| ConnectError::Proxy(shown.clone(), e.to_string());
    let (mut s, peer) = tcp_connect(&proxy.host.name, proxy.host.port).await?;
    let auth = proxy.username.is_some();
    let greeting: &[u8] = if auth { &[5, 2, 0, 2] } else { &[5, 1, 0] };
    s.write_all(greeting).await.map_err(io)?;
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).await.map_err(io)?;
    if reply[0] != 5 {
        return Err(err(format!(
            "not a SOCKS5 server (version byte {})",
            reply[0]
        )));
    }
    match reply[1] {
        0 => {}
        2 if auth => {
            let user = proxy.username.as_deref().unwrap_or_default().as_bytes();
            let pass = proxy.password.as_deref().unwrap_or_default().as_bytes();
            if user.len() > 255 || pass.len() > 255 {
                return Err(err("username and password must be at most 255 bytes".into()));
            }
            let mut m = vec![1, user.len() as u8];
            m.extend_from_slice(user);
            m.push(pass.len() as u8);
            m.extend_from_slice(pass);
            s.write_all(&m).await.map_err(io)?;
            s.read_exact(&mut reply).await.map_err(io)?;
            if reply[1] != 0 {
                return Err(err(
                    "the proxy rejected the username or password of proxy_url".into(),
                ));
            }
        }
        0xff => {
            return Err(err(if auth {
                "no acceptable authentication method".into()
            } else {
                "the proxy requires authentication; put user:password@ in proxy_url".into()
            }))
        }
        m => return Err(err(format!("the proxy chose an unsupported method {m}"))),
    }
    let mut req = vec![5, 1, 0];
    let ip = match target.name.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) if proxy.local_resolver => Some(resolve(&target.name, target.port).await?[0].ip()),
        Err(_) => None,
    };
    match ip {
        Some(IpAddr::V4(v4)) => {
            req.push(1);
            req.extend_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            req.push(4);
            req.extend_from_slice(&v6.octets());
        }
        None => {
            let n = target.name.as_bytes();
            if n.len() > 255 {
                return Err(err(format!("host name {} is too long", target.name)));
            }
            req.push(3);
            req.push(n.len() as u8);
            req.extend_from_slice(n);
        }
    }
    req.extend_from_slice(&target.port.to_be_bytes());
    s.write_all(&req).await.map_err(io)?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.map_err(io)?;
    if head[1] != 0 {
        let why = match head[1] {
            1 => "general failure",
            2 => "connection not allowed by ruleset",
            3 => "network unreachable",
            4 => "host unreachable",
            5 => "connection refused",
            6 => "TTL expired",
            7 => "command not supported",
            8 => "address type not supported",
            _ => "unknown error",
        };
        return Err(err(format!("CONNECT to {target} failed: {why}")));
    }
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut l = [0u8; 1];
            s.read_exact(&mut l).await.map_err(io)?;
            l[0] as usize + 2
        }
        t => return Err(err(format!("bad address type {t} in the reply"))),
    };
    let mut skip = vec![0u8; rest];
    s.read_exact(&mut skip).await.map_err(io)?;
    Ok((s, peer))
}
