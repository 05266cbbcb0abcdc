//! A NATS prefix per test (or bench phase): its own JetStream streams (`<PREFIX>_EVENTS`, `_TICKS`, `_MD`) and
//! price bucket, deleted when the test finishes ([`TestNats::delete`]) or, failing that, when the guard drops (also
//! on a panic or an error half-way through setup).

use strom_commands::bus::nats::NatsBus;
use strom_commands::bus::Subjects;

/// A unique prefix, cleaned up on drop.
pub struct TestNats {
    url: String,
    subjects: Subjects,
    armed: bool,
}

impl TestNats {
    /// A prefix `<tag><uuid>` on [`crate::nats_url`].
    ///
    /// # Panics
    /// `tag` is not a valid prefix start.
    pub fn new(tag: &str) -> Self {
        Self::at(&crate::nats_url(), tag)
    }

    /// A prefix `<tag><uuid>` on the NATS server at `url`.
    ///
    /// # Panics
    /// `tag` is not a valid prefix start.
    pub fn at(url: &str, tag: &str) -> Self {
        let subjects = Subjects::new(format!("{tag}{}", uuid::Uuid::new_v4().simple()))
            .expect("a valid NATS prefix");
        Self {
            url: url.to_owned(),
            subjects,
            armed: true,
        }
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    pub fn prefix(&self) -> &str {
        self.subjects.prefix()
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A bus on this prefix (without its topology: `ensure_topology` is the caller's).
    ///
    /// # Errors
    /// NATS does not answer.
    pub async fn try_connect(&self) -> anyhow::Result<NatsBus> {
        NatsBus::connect(&self.url, self.subjects.clone())
            .await
            .map_err(|e| anyhow::anyhow!("NATS with JetStream must run at {}: {e}", self.url))
    }

    /// [`Self::try_connect`], panicking on an error.
    ///
    /// # Panics
    /// NATS does not answer.
    pub async fn connect(&self) -> NatsBus {
        self.try_connect().await.unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Deletes the prefix's streams and bucket now, in the caller's runtime.
    pub async fn delete(mut self) {
        self.armed = false;
        if let Err(e) = delete_topology(&self.url, self.subjects.clone()).await {
            eprintln!(
                "warning: could not delete NATS prefix {}: {e:#}",
                self.prefix()
            );
        }
    }
}

async fn delete_topology(url: &str, subjects: Subjects) -> anyhow::Result<()> {
    // A fresh connection: the test's own may belong to a runtime that is unwinding.
    let bus = NatsBus::connect(url, subjects).await?;
    bus.delete_topology().await?;
    Ok(())
}

impl Drop for TestNats {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // The test's runtime is blocked in this drop (or unwinding): clean up on a thread and runtime of our own.
        let (url, subjects) = (self.url.clone(), self.subjects.clone());
        let done = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(delete_topology(&url, subjects))
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("warning: could not delete NATS prefix {}", self.prefix());
        }
    }
}
