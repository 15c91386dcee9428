//! Console accounts, their sessions, API keys and widget tokens (migration 0003).
//!
//! Secrets never reach this module in a usable form: callers pass argon2 PHC strings for
//! passwords and SHA-256 digests for tokens and keys.

use crate::{now_ms, Result, Store};
use sqlx::Row;

/// A console account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// The agent's id.
    pub id: String,
    /// argon2 PHC string.
    pub password_hash: String,
    /// `agent`, `supervisor` or `admin`.
    pub role: String,
}

fn user_from_row(r: &sqlx::sqlite::SqliteRow) -> User {
    User {
        id: r.get("id"),
        password_hash: r.get("password_hash"),
        role: r.get("role"),
    }
}

impl Store {
    /// Creates or replaces the account of agent `id`.
    ///
    /// # Errors
    /// [`crate::StoreError`] on database failure.
    pub async fn upsert_user(&self, id: &str, password_hash: &str, role: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (id, password_hash, role, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role",
        )
        .bind(id)
        .bind(password_hash)
        .bind(role)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The account of agent `id`.
    ///
    /// # Errors
    /// [`crate::StoreError`] on database failure.
    pub async fn user(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT id, password_hash, role FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_from_row))
    }

    /// Whether any account or API key exists: from then on the API asks who is calling.
    ///
    /// # Errors
    /// [`crate::StoreError`] on database failure.
    pub async fn has_credentials(&self) -> Result<bool> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL) AS any",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get::<i64, _>("any") != 0)
    }

    /// Stores a session for `user` until `expires_at` (ms).
    ///
    /// # Errors
    /// [`crate::StoreError`] on database failure.
    pub async fn create_session(
        &self,
        token_hash: &str,
        user: &str,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user)
            .bind(now_ms())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The account behind an unexpired session.
    ///
    /// # Errors
    /// [`crate::StoreError`] on database failure.
    pub async fn session_user(&self, token_hash: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT u.id, u.password_hash, u.role FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_from_row))
    }

    /// Ends a session.
    ///
    /// # Errors
    /// [`crate::StoreError`] on database failure.
    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores an API key.
    ///
    /// # Errors
    /// [`crate::StoreError`] on database failure.
    pub async fn create_api_key(
        &self,
        id: &str,
        key_hash: &str,
        name: &str,
        scopes: &[String],
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, key_hash, name, scopes, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(key_hash)
        .bind(name)
        .bind(serde_json::to_string(scopes)?)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The scopes of an unrevoked API key.
    ///
    /// # Errors
    /// [`crate::StoreError`] on database failure or unreadable data.
    pub async fn api_key_scopes(&self, key_hash: &str) -> Result<Option<Vec<String>>> {
        let row =
            sqlx::query("SELECT scopes FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL")
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| serde_json::from_str(&r.get::<String, _>("scopes")).map_err(Into::into))
            .transpose()
    }

    /// Ties a widget token to its conversation.
    ///
    /// # Errors
    /// [`crate::StoreError`] on database failure.
    pub async fn create_widget_token(&self, token_hash: &str, conversation: &str) -> Result<()> {
        sqlx::query("INSERT INTO widget_tokens (token_hash, conversation_id) VALUES (?, ?)")
            .bind(token_hash)
            .bind(conversation)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The conversation a widget token opens.
    ///
    /// # Errors
    /// [`crate::StoreError`] on database failure.
    pub async fn widget_conversation(&self, token_hash: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT conversation_id FROM widget_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get("conversation_id")))
    }

    /// The customer's rating of the conversation, if given.
    ///
    /// # Errors
    /// [`crate::StoreError`] on database failure.
    pub async fn csat(&self, conversation: &str) -> Result<Option<u8>> {
        let row = sqlx::query("SELECT csat FROM conversations WHERE id = ?")
            .bind(conversation)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .and_then(|r| r.get::<Option<i64>, _>("csat"))
            .and_then(|v| u8::try_from(v).ok()))
    }

    /// Records the customer's rating (1-5) of the human part of a conversation.
    ///
    /// # Errors
    /// [`crate::StoreError`] on database failure.
    pub async fn set_csat(&self, conversation: &str, score: u8) -> Result<()> {
        sqlx::query("UPDATE conversations SET csat = ? WHERE id = ?")
            .bind(i64::from(score))
            .bind(conversation)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_domain::Customer;

    #[tokio::test]
    async fn accounts_sessions_keys_and_widget_tokens_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let s = Store::connect(&url).await.expect("connect");
        assert!(!s.has_credentials().await.expect("any"));
        s.upsert_user("ana", "$argon2id$x", "agent")
            .await
            .expect("user");
        assert!(s.has_credentials().await.expect("any"));
        assert_eq!(
            s.user("ana").await.expect("user").map(|u| u.role),
            Some("agent".into())
        );
        s.create_session("h1", "ana", now_ms() + 60_000)
            .await
            .expect("session");
        s.create_session("h2", "ana", now_ms() - 1)
            .await
            .expect("expired");
        assert_eq!(
            s.session_user("h1").await.expect("live").map(|u| u.id),
            Some("ana".into())
        );
        assert!(s.session_user("h2").await.expect("expired").is_none());
        s.delete_session("h1").await.expect("logout");
        assert!(s.session_user("h1").await.expect("gone").is_none());
        s.create_api_key("k1", "kh", "bot", &["bot".into()])
            .await
            .expect("key");
        assert_eq!(
            s.api_key_scopes("kh").await.expect("scopes"),
            Some(vec!["bot".to_owned()])
        );
        assert!(s.api_key_scopes("nope").await.expect("none").is_none());
        s.create_conversation("c1", &Customer::default(), None)
            .await
            .expect("conversation");
        s.create_widget_token("wt", "c1").await.expect("token");
        assert_eq!(
            s.widget_conversation("wt").await.expect("widget"),
            Some("c1".into())
        );
        s.set_csat("c1", 5).await.expect("csat");
    }
}
