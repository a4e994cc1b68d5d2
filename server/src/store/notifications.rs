//! Notifications: a re-sent push of a pending Challenge, stored with that push.

use super::challenges::ChallengeRow;
use super::pushes::{Announcing, NewPush};
use super::script::Script;
use super::{placeholders, violation, Arg, Store, Violation};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: i64,
    pub sid: String,
    pub challenge_id: i64,
    pub account_sid: String,
    pub service_sid: String,
    pub entity_sid: String,
    pub identity: String,
    pub challenge_sid: String,
    pub priority: String,
    pub ttl: i64,
    pub date_created: i64,
}

/// The columns a Notification's creation sets, in the order of [`NewNotification::args`].
const INSERT_COLUMNS: &str =
    "sid, challenge_id, account_sid, service_sid, entity_sid, identity, challenge_sid, priority, ttl, date_created";

/// The priority of every Notification (Verify Push sends high-priority pushes only).
const PRIORITY: &str = "high";

/// A Notification to create for `challenge`.
#[derive(Debug)]
pub struct NewNotification<'a> {
    pub sid: String,
    pub challenge: &'a ChallengeRow,
    /// Seconds the push stays deliverable.
    pub ttl: i64,
    pub now: i64,
}

impl NewNotification<'_> {
    /// The values of [`INSERT_COLUMNS`].
    fn args(&self) -> [Arg; 10] {
        let c = self.challenge;
        [
            Arg::text(&self.sid),
            Arg::Int(c.id),
            Arg::text(&c.account_sid),
            Arg::text(&c.service_sid),
            Arg::text(&c.entity_sid),
            Arg::text(&c.identity),
            Arg::text(&c.sid),
            Arg::text(PRIORITY),
            Arg::Int(self.ttl),
            Arg::Int(self.now),
        ]
    }

    /// The row stored as `id`.
    fn row(self, id: i64) -> NotificationRow {
        let c = self.challenge;
        NotificationRow {
            id,
            sid: self.sid,
            challenge_id: c.id,
            account_sid: c.account_sid.clone(),
            service_sid: c.service_sid.clone(),
            entity_sid: c.entity_sid.clone(),
            identity: c.identity.clone(),
            challenge_sid: c.sid.clone(),
            priority: PRIORITY.to_owned(),
            ttl: self.ttl,
            date_created: self.now,
        }
    }
}

/// The outcome of [`Store::create_notification`].
#[derive(Debug)]
pub enum NotificationCreated {
    Created(NotificationRow),
    /// The Challenge already has the most Notifications it may have.
    LimitReached,
    /// The Challenge was deleted (with its Factor or Entity) since it was read.
    ChallengeGone,
}

impl Store {
    /// Stores a Notification and its push, unless the Challenge already has `max` Notifications.
    ///
    /// The no-op `UPDATE` locks the Challenge's row on PostgreSQL until the commit, so concurrent
    /// Notifications of one Challenge count one after the other, each seeing those committed
    /// before it (READ COMMITTED reads afresh per statement); SQLite has one writer.
    pub async fn create_notification(
        &self,
        new: NewNotification<'_>,
        push: &NewPush,
        max: i64,
    ) -> Result<NotificationCreated, sqlx::Error> {
        let c = new.challenge;
        let announcing = Announcing {
            account_sid: &c.account_sid,
            service_sid: &c.service_sid,
            factor_sid: &c.factor_sid,
            challenge_sid: &c.sid,
            notification_sid: Some(&new.sid),
        };
        let (push_text, push_args) = push.insert(announcing);
        let insert = format!(
            "INSERT INTO notifications ({INSERT_COLUMNS}) SELECT {} \
             WHERE (SELECT COUNT(*) FROM notifications WHERE challenge_id = ?) < ? RETURNING id",
            placeholders(INSERT_COLUMNS)
        );
        let script = Script::new()
            .then("UPDATE challenges SET date_updated = date_updated WHERE id = ?", [Arg::Int(c.id)])
            .then(&insert, new.args().into_iter().chain([Arg::Int(c.id), Arg::Int(max)]))
            .then_if_returned(&push_text, push_args);
        match self.run_script(script).await {
            Ok(ids) => Ok(match ids.first() {
                Some(&id) => NotificationCreated::Created(new.row(id)),
                None => NotificationCreated::LimitReached,
            }),
            Err(e) if violation(&e) == Some(Violation::ForeignKey) => Ok(NotificationCreated::ChallengeGone),
            Err(e) => Err(e),
        }
    }
}
