//! Webhook configurations of a Service (delivery is the webhooks worker's business).

use super::script::Script;
use super::services::ServiceRow;
use super::{bind_args, insert_sql, on_pool, Arg, Page, Sql, Store, Window};
use crate::domain::sid::WebhookSid;
use crate::domain::status::WebhookStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: i64,
    pub sid: String,
    pub service_id: i64,
    pub account_sid: String,
    pub service_sid: String,
    pub webhook_method: String,
    #[sqlx(flatten)]
    pub settings: WebhookSettings,
    pub date_created: i64,
    pub date_updated: i64,
}

/// What a webhook's creator or updater sets.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookSettings {
    pub friendly_name: String,
    /// Comma-separated event types, in the order given.
    pub event_types: String,
    pub webhook_url: String,
    #[sqlx(try_from = "String")]
    pub status: WebhookStatus,
    pub version: String,
}

impl WebhookSettings {
    /// The settable columns' arguments: friendly_name, event_types, webhook_url, status, version.
    fn args(&self) -> [Arg; 5] {
        [
            Arg::text(&self.friendly_name),
            Arg::text(&self.event_types),
            Arg::text(&self.webhook_url),
            Arg::text(self.status.as_str()),
            Arg::text(&self.version),
        ]
    }
}

/// A webhook to create for `service`.
#[derive(Debug)]
pub struct NewWebhook<'a> {
    pub sid: WebhookSid,
    pub service: &'a ServiceRow,
    pub settings: WebhookSettings,
    pub now: i64,
}

/// Every webhook is called with POST.
const WEBHOOK_METHOD: &str = "POST";

const COLUMNS: &str = "id, sid, service_id, account_sid, service_sid, friendly_name, event_types, \
    webhook_url, webhook_method, status, version, date_created, date_updated";

const INSERT_COLUMNS: &str = "sid, service_id, account_sid, service_sid, webhook_method, friendly_name, \
    event_types, webhook_url, status, version, date_created, date_updated";

impl Store {
    /// Creates a webhook.
    pub async fn create_webhook(&self, new: NewWebhook<'_>) -> Result<WebhookRow, sqlx::Error> {
        let scope = [
            Arg::text(&new.sid),
            Arg::Int(new.service.id),
            Arg::text(&new.service.account_sid),
            Arg::text(&new.service.sid),
            Arg::text(WEBHOOK_METHOD),
        ];
        let args = scope.into_iter().chain(new.settings.args()).chain([Arg::Int(new.now), Arg::Int(new.now)]);
        let script = Script::new().then(&format!("{} RETURNING id", insert_sql("webhooks", INSERT_COLUMNS)), args);
        let id = self.run_insert(script).await?;
        Ok(WebhookRow {
            id,
            sid: new.sid.into(),
            service_id: new.service.id,
            account_sid: new.service.account_sid.clone(),
            service_sid: new.service.sid.clone(),
            webhook_method: WEBHOOK_METHOD.to_owned(),
            settings: new.settings,
            date_created: new.now,
            date_updated: new.now,
        })
    }

    /// Writes `new` over a webhook's settings at `now`, only if the row still holds `old`'s
    /// values, so that concurrent updates never overwrite each other. The updated row, or `None`
    /// when it changed meanwhile (read it again and reapply) or is gone.
    pub async fn update_webhook(
        &self,
        old: &WebhookRow,
        new: WebhookSettings,
        now: i64,
    ) -> Result<Option<WebhookRow>, sqlx::Error> {
        let sql = Sql::statement(
            "UPDATE webhooks SET friendly_name = ?, event_types = ?, webhook_url = ?, status = ?, version = ?, \
             date_updated = ? WHERE id = ? AND friendly_name = ? AND event_types = ? AND webhook_url = ? \
             AND status = ? AND version = ?",
            new.args().into_iter().chain([Arg::Int(now), Arg::Int(old.id)]).chain(old.settings.args()),
        );
        let updated = on_pool!(self, write, |pool| {
            bind_args!(sqlx::query(&sql.text), &sql.args).execute(pool).await.map(|r| r.rows_affected() > 0)
        })?;
        Ok(updated.then(|| WebhookRow { settings: new, date_updated: now, ..old.clone() }))
    }

    pub async fn webhook(&self, service_id: i64, sid: &WebhookSid) -> Result<Option<WebhookRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE sid = $1 AND service_id = $2");
        on_pool!(self, read, |pool| {
            sqlx::query_as::<_, WebhookRow>(&sql).bind(sid.as_str()).bind(service_id).fetch_optional(pool).await
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
