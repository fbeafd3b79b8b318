//! The queue consumer: each batch of queued requests becomes one signed batch to the ingest
//! server; it is acknowledged only after a `2xx`, and retried with backoff otherwise (after
//! `max_retries` the queue moves it to the dead-letter queue, which has no consumer; see
//! README, "Dead letters", for replaying it).

use tally_edge_model::forward::{batch_body, Delivery};
use tally_edge_model::retry;
use worker::{Env, MessageBatch, MessageExt, QueueRetryOptionsBuilder, RawMessage, Result};

use crate::config::Config;
use crate::http::now_ms;
use crate::ingest;

pub async fn consume(batch: MessageBatch<String>, env: &Env) -> Result<()> {
    let messages: Vec<RawMessage> = batch.raw_iter().collect();
    let bodies: Vec<String> = messages
        .iter()
        .map(|m| m.body().as_string().unwrap_or_default())
        .collect();
    let first_id = messages.first().map(|m| m.id()).unwrap_or_default();
    let out = batch_body(
        &format!("edge-{first_id}"),
        bodies.iter().map(String::as_str),
    );

    let cfg = Config::from_env(env);
    let base = cfg
        .as_ref()
        .map_or(retry::BASE_DELAY_S, |c| c.retry_base_delay_s);
    let age_s = out
        .oldest_ms
        .map_or(0, |t| u64::try_from((now_ms() - t) / 1000).unwrap_or(0));
    let later = QueueRetryOptionsBuilder::new()
        .with_delay_seconds(retry::delay_s(age_s, base))
        .build();
    let delivery = match (&cfg, out.messages) {
        (_, 0) => Delivery::Delivered,
        (Ok(cfg), n) => match ingest::post_batch(cfg, out.body).await {
            Ok(status) => {
                let d = Delivery::of_status(status);
                if d == Delivery::Delivered {
                    worker::console_log!("forwarded {} requests' events ({})", n, status);
                }
                d
            }
            Err(e) => {
                worker::console_warn!("forwarding {} requests' events failed: {}", n, e);
                Delivery::Retry
            }
        },
        (Err(e), _) => {
            worker::console_error!("not configured: {}", e);
            Delivery::Retry
        }
    };
    for (i, m) in messages.iter().enumerate() {
        if delivery == Delivery::Delivered && !out.unreadable.contains(&i) {
            m.ack();
        } else {
            m.retry_with_options(&later);
        }
    }
    Ok(())
}
