//! Fault injection: a bus whose chosen publishes fail (before or after the message is stored), and a TCP proxy
//! in front of NATS whose connections the test can cut.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use strom_commands::bus::{
    Bus, BusError, Consumer, ConsumerSpec, Headers, PriceBoard, PublishAck, StreamKind,
    StreamStats, Subjects,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Delegates to a real bus, except that the publish calls numbered in `lost` (1-based, counting every call) fail
/// without reaching it, and those in `ack_lost` reach it (the message is stored) but report a failure.
pub struct FlakyBus {
    inner: Arc<dyn Bus>,
    lost: Vec<u64>,
    ack_lost: Vec<u64>,
    calls: AtomicU64,
    faults: AtomicU64,
}

impl FlakyBus {
    pub fn new(inner: Arc<dyn Bus>, lost: &[u64], ack_lost: &[u64]) -> Self {
        Self {
            inner,
            lost: lost.to_vec(),
            ack_lost: ack_lost.to_vec(),
            calls: AtomicU64::new(0),
            faults: AtomicU64::new(0),
        }
    }

    /// Faults injected so far.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::SeqCst)
    }

    fn fault(&self, what: &'static str) -> BusError {
        self.faults.fetch_add(1, Ordering::SeqCst);
        BusError::Nats {
            operation: "publish",
            source: what.into(),
        }
    }
}

#[async_trait]
impl Bus for FlakyBus {
    fn subjects(&self) -> &Subjects {
        self.inner.subjects()
    }

    async fn ensure_topology(&self) -> Result<(), BusError> {
        self.inner.ensure_topology().await
    }

    async fn publish(
        &self,
        subject: &str,
        msg_id: &str,
        headers: &Headers,
        payload: Vec<u8>,
    ) -> Result<PublishAck, BusError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.lost.contains(&call) {
            return Err(self.fault("injected: message lost on the way"));
        }
        let ack = self
            .inner
            .publish(subject, msg_id, headers, payload)
            .await?;
        if self.ack_lost.contains(&call) {
            return Err(self.fault("injected: stored, but the ack was lost"));
        }
        Ok(ack)
    }

    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn Consumer>, BusError> {
        self.inner.consumer(spec).await
    }

    async fn price_board(&self) -> Result<Arc<dyn PriceBoard>, BusError> {
        self.inner.price_board().await
    }

    async fn stream_stats(&self, kind: StreamKind) -> Result<StreamStats, BusError> {
        self.inner.stream_stats(kind).await
    }
}

/// Forwards TCP connections to `upstream`; [`Proxy::sever`] cuts every open one (the client sees the connection
/// drop and reconnects through the proxy, which keeps listening).
pub struct Proxy {
    pub addr: SocketAddr,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let upstream = upstream.clone();
                    let forward = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().unwrap().push(forward);
                }
            }
        });
        Self {
            addr,
            connections,
            accept,
        }
    }

    /// Cuts every connection open now; returns how many there were.
    pub fn sever(&self) -> usize {
        let open: Vec<JoinHandle<()>> = std::mem::take(&mut *self.connections.lock().unwrap());
        let count = open.iter().filter(|c| !c.is_finished()).count();
        for connection in open {
            connection.abort();
        }
        count
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.sever();
    }
}
