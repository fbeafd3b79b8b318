//! The write pipeline: a bounded queue in front of one writer task that commits events in
//! batches (group commit).
//!
//! A handler [`Pipeline::submit`]s its validated events and waits for the [`Outcome`]; the
//! writer takes every job that is waiting (up to [`PipelineConfig::max_batch`] events, after
//! lingering at most [`PipelineConfig::linger`] for more), writes them in one transaction, and
//! answers each job only after the commit. So a `202` always means "on disk", and a process
//! killed at any moment loses nothing it acknowledged.
//!
//! The queue is bounded in *events* (a semaphore): when it is full, `submit` fails at once
//! with [`Overloaded`] and the handler answers `503` with `Retry-After` instead of buffering.
//! Closing the pipeline lets the writer drain every job already queued before it exits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::store::{NewEvent, Store};

/// Sizes and timings of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Events that may wait for the writer at once.
    pub capacity: usize,
    /// Most events written in one transaction.
    pub max_batch: usize,
    /// How long the writer waits for more jobs before writing a small batch.
    pub linger: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            capacity: 50_000,
            max_batch: 5_000,
            linger: Duration::ZERO,
        }
    }
}

/// What became of one job's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Events stored for the first time.
    pub accepted: usize,
    /// Events whose id was already stored (or repeated within the job).
    pub duplicates: usize,
}

/// The queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the write queue is full")]
pub struct Overloaded;

/// The batch holding the job could not be written; nothing of it was stored.
#[derive(Debug, Clone, thiserror::Error)]
#[error("events could not be written: {0}")]
pub struct WriteFailed(pub String);

struct Job {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Outcome, WriteFailed>>,
    _permit: OwnedSemaphorePermit,
}

/// The writer's health as seen by `/healthz`.
#[derive(Debug, Default)]
pub struct WriterHealth {
    failing: AtomicBool,
    /// Milliseconds since the epoch of the last successful commit.
    last_commit_ms: AtomicU64,
    stopped: AtomicBool,
}

impl WriterHealth {
    /// `None` when healthy, else what is wrong.
    pub fn problem(&self) -> Option<&'static str> {
        if self.stopped.load(Ordering::Relaxed) {
            Some("writer stopped")
        } else if self.failing.load(Ordering::Relaxed) {
            Some("writer cannot commit to the database")
        } else {
            None
        }
    }
}

/// The handle handlers use. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    tx: mpsc::UnboundedSender<Job>,
    permits: Arc<Semaphore>,
    capacity: usize,
    pub health: Arc<WriterHealth>,
}

impl Pipeline {
    /// Starts the writer task. The pipeline closes when every `Pipeline` clone is dropped;
    /// the returned handle finishes once the writer has drained the queue.
    pub fn start(
        store: Store,
        metrics: Arc<Metrics>,
        config: PipelineConfig,
    ) -> (Pipeline, JoinHandle<()>) {
        // The channel itself is unbounded; the semaphore bounds it in events.
        let (tx, rx) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(config.capacity));
        let health = Arc::new(WriterHealth::default());
        let writer = Writer {
            store,
            metrics,
            rx,
            config: config.clone(),
            health: health.clone(),
        };
        let handle = tokio::spawn(writer.run());
        let pipeline = Pipeline {
            tx,
            permits,
            capacity: config.capacity,
            health,
        };
        (pipeline, handle)
    }

    /// Events waiting for the writer.
    pub fn depth(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }

    /// Queues `events` and waits until they are committed.
    pub async fn write(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<Result<Outcome, WriteFailed>, Overloaded> {
        let rx = self.submit(events)?;
        Ok(rx
            .await
            .unwrap_or_else(|_| Err(WriteFailed("the writer stopped".into()))))
    }

    /// Queues `events`; the receiver gets the outcome after the commit.
    pub fn submit(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<oneshot::Receiver<Result<Outcome, WriteFailed>>, Overloaded> {
        let (reply, rx) = oneshot::channel();
        if events.is_empty() {
            let _ = reply.send(Ok(Outcome::default()));
            return Ok(rx);
        }
        let n = u32::try_from(events.len()).map_err(|_| Overloaded)?;
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| Overloaded)?;
        self.tx
            .send(Job {
                events,
                reply,
                _permit: permit,
            })
            .map_err(|_| Overloaded)?;
        Ok(rx)
    }
}

struct Writer {
    store: Store,
    metrics: Arc<Metrics>,
    rx: mpsc::UnboundedReceiver<Job>,
    config: PipelineConfig,
    health: Arc<WriterHealth>,
}

impl Writer {
    async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let mut jobs = vec![first];
            let mut size = jobs[0].events.len();
            let deadline = tokio::time::Instant::now() + self.config.linger;
            while size < self.config.max_batch {
                let next = match self.rx.try_recv() {
                    Ok(job) => Some(job),
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        tokio::time::timeout_at(deadline, self.rx.recv())
                            .await
                            .unwrap_or_default()
                    }
                };
                let Some(job) = next else { break };
                size += job.events.len();
                jobs.push(job);
            }
            self.write(jobs).await;
        }
        self.health.stopped.store(true, Ordering::Relaxed);
        tracing::info!("writer drained and stopped");
    }

    async fn write(&self, mut jobs: Vec<Job>) {
        // The events move to the store; each job keeps its count (and its permit, so the
        // queue's room comes back only after the commit).
        let mut events = Vec::with_capacity(jobs.iter().map(|j| j.events.len()).sum());
        let counts: Vec<usize> = jobs
            .iter_mut()
            .map(|job| {
                let n = job.events.len();
                events.append(&mut job.events);
                n
            })
            .collect();
        let total = events.len();
        let started = Instant::now();
        let result = self.store.insert_events(events).await;
        let elapsed = started.elapsed();
        match result {
            Ok(inserted) => {
                self.health.failing.store(false, Ordering::Relaxed);
                self.health
                    .last_commit_ms
                    .store(crate::now_ms().max(0) as u64, Ordering::Relaxed);
                self.metrics.observe_commit(total, elapsed);
                let mut flags = inserted.iter();
                for (job, n) in jobs.into_iter().zip(counts) {
                    // An id that repeats within the batch counts for its first job only.
                    let accepted = flags.by_ref().take(n).filter(|&&new| new).count();
                    let outcome = Outcome {
                        accepted,
                        duplicates: n - accepted,
                    };
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                self.health.failing.store(true, Ordering::Relaxed);
                self.metrics.commit_failures.inc();
                tracing::error!(error = %err, events = total, "batch could not be written");
                let failed = WriteFailed(err.to_string());
                for job in jobs {
                    let _ = job.reply.send(Err(failed.clone()));
                }
            }
        }
    }
}
