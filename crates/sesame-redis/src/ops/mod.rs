//! The store operations, one module each: the Rust that builds a script's `KEYS`/`ARGV` and
//! reads its reply sits beside the script (`<op>.lua`). `lineage` reads keys and follows
//! superseded tokens for all of them.

mod create;
mod end;
pub(crate) mod lineage;
mod load;
mod rotate;
mod save;
mod users;

use async_trait::async_trait;
use sesame::{
    CreateOutcome, Delta, Loaded, Login, Lookup, Policy, Record, RotateOutcome, Rotation,
    SaveOutcome, SessionInfo, SessionKey, Store, StoreError, UserRef,
};

use crate::store::RedisStore;

#[async_trait]
impl Store for RedisStore {
    async fn create(
        &self,
        key: &SessionKey,
        record: &Record,
        login: Option<&Login>,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<CreateOutcome, StoreError> {
        let options = create::Options::default();
        match create::create(self, key, record, login, now_ms, policy, options).await? {
            create::Created::Outcome(o) => Ok(o),
            create::Created::Lapsed => Ok(CreateOutcome::Exists),
        }
    }

    async fn load(
        &self,
        key: &SessionKey,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<Lookup, StoreError> {
        load::load(self, key, now_ms, policy).await
    }

    async fn save(
        &self,
        key: &SessionKey,
        base: &Loaded,
        delta: &Delta,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<SaveOutcome, StoreError> {
        save::save(self, key, base, delta, now_ms, policy).await
    }

    async fn rotate(
        &self,
        rotation: &Rotation<'_>,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<RotateOutcome, StoreError> {
        rotate::rotate(self, rotation, now_ms, policy).await
    }

    async fn destroy(&self, key: &SessionKey, now_ms: u64) -> Result<bool, StoreError> {
        end::end_lineage(self, key, now_ms).await
    }

    async fn peek(
        &self,
        keys: &[SessionKey],
        now_ms: u64,
    ) -> Result<Vec<Option<Record>>, StoreError> {
        users::peek(self, keys, now_ms).await
    }

    async fn user_epoch(&self, user: UserRef) -> Result<u64, StoreError> {
        users::user_epoch(self, user).await
    }

    async fn list_user(
        &self,
        user: UserRef,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        users::list_user(self, user, now_ms, limit).await
    }

    async fn revoke(&self, user: UserRef, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        end::revoke(self, user, id, now_ms).await
    }

    async fn revoke_all(
        &self,
        user: UserRef,
        keep: Option<&str>,
        _now_ms: u64,
    ) -> Result<u64, StoreError> {
        users::revoke_all(self, user, keep).await
    }
}
