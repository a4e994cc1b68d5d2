//! Webhook configurations of a Service (delivery is the webhooks worker's business).

use super::{on_pool, Arg, Page, Sql, Store, Window};
use crate::domain::status::WebhookStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: i64,
    pub sid: String,
    pub service_id: i64,
    pub account_sid: String,
    pub service_sid: String,
    pub friendly_name: String,
    /// Comma-separated event types, in the order given.
    pub event_types: String,
    pub webhook_url: String,
    pub webhook_method: String,
    #[sqlx(try_from = "String")]
    pub status: WebhookStatus,
    pub version: String,
    pub date_created: i64,
    pub date_updated: i64,
}

const COLUMNS: &str = "id, sid, service_id, account_sid, service_sid, friendly_name, event_types, \
    webhook_url, webhook_method, status, version, date_created, date_updated";

impl Store {
    pub async fn insert_webhook(&self, w: &WebhookRow) -> Result<i64, sqlx::Error> {
        let sql = format!(
            "INSERT INTO webhooks ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             RETURNING id",
            &COLUMNS[4..]
        );
        on_pool!(self, write, |pool| {
            sqlx::query_scalar::<_, i64>(&sql)
                .bind(&w.sid)
                .bind(w.service_id)
                .bind(&w.account_sid)
                .bind(&w.service_sid)
                .bind(&w.friendly_name)
                .bind(&w.event_types)
                .bind(&w.webhook_url)
                .bind(&w.webhook_method)
                .bind(w.status.as_str())
                .bind(&w.version)
                .bind(w.date_created)
                .bind(w.date_updated)
                .fetch_one(pool)
                .await
        })
    }

    /// Writes an update of a webhook, only if the row still holds `old`'s values, so that
    /// concurrent updates never overwrite each other. False when it changed meanwhile (read it
    /// again and reapply) or is gone.
    pub async fn update_webhook(&self, old: &WebhookRow, new: &WebhookRow) -> Result<bool, sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query(
                "UPDATE webhooks SET friendly_name = $2, event_types = $3, webhook_url = $4, \
                 status = $5, version = $6, date_updated = $7 WHERE id = $1 AND friendly_name = $8 \
                 AND event_types = $9 AND webhook_url = $10 AND status = $11 AND version = $12",
            )
            .bind(old.id)
            .bind(&new.friendly_name)
            .bind(&new.event_types)
            .bind(&new.webhook_url)
            .bind(new.status.as_str())
            .bind(&new.version)
            .bind(new.date_updated)
            .bind(&old.friendly_name)
            .bind(&old.event_types)
            .bind(&old.webhook_url)
            .bind(old.status.as_str())
            .bind(&old.version)
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0)
        })
    }

    pub async fn webhook(&self, service_id: i64, sid: &str) -> Result<Option<WebhookRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE sid = $1 AND service_id = $2");
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, WebhookRow>(&sql).bind(sid).bind(service_id).fetch_optional(pool).await
        })
    }

    pub async fn delete_webhook(&self, service_id: i64, sid: &str) -> Result<bool, sqlx::Error> {
        on_pool!(self, write, |pool| {
            sqlx::query("DELETE FROM webhooks WHERE sid = $1 AND service_id = $2")
                .bind(sid)
                .bind(service_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected() > 0)
        })
    }

    pub async fn list_webhooks(&self, service_id: i64, window: &Window) -> Result<Page<WebhookRow>, sqlx::Error> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM webhooks WHERE "));
        sql.push("service_id = ?", [Arg::Int(service_id)]);
        self.fetch_page(sql, window).await
    }
}
