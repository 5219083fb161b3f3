//! Fleet-wide leases: at most one holder at a time, for a bounded time.
//!
//! A lease is one item `{holder, expires_at}`. Taking a free lease creates it
//! (`NotExists`: an expired item counts as absent on every backend), the holder renews
//! it with a compare-and-swap on the version it read, and anyone else is refused until
//! it expires. A holder that dies simply lets it lapse. Two nodes racing for a free
//! lease both try `NotExists`: one wins. Clocks matter only to within the lease's time
//! to live (each backend judges expiry by its writer's clock).

use crate::{Condition, EXPIRES_AT, MetadataStore, Result, StoreError};
use serde_json::{Map, Value};

/// Takes or renews the lease at `pk`/`sk` for `holder` until `now + ttl_secs` (Unix
/// seconds). `Ok(false)`: someone else holds it (or won a race for it).
pub async fn try_acquire(
    store: &dyn MetadataStore,
    pk: &str,
    sk: &str,
    holder: &str,
    now: u64,
    ttl_secs: u64,
) -> Result<bool> {
    let condition = match store.get(pk, sk).await? {
        None => Condition::NotExists,
        Some(item) if item.str("holder") == Some(holder) => Condition::VersionIs(item.version),
        Some(_) => return Ok(false),
    };
    let mut attrs = Map::new();
    attrs.insert("holder".into(), Value::from(holder));
    attrs.insert(EXPIRES_AT.into(), Value::from(now.saturating_add(ttl_secs)));
    match store.put(pk, sk, attrs, condition).await {
        Ok(_) => Ok(true),
        Err(StoreError::ConditionFailed { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease up if `holder` still holds it (so the next node need not wait for
/// it to expire). Holding nothing is not an error.
pub async fn release(store: &dyn MetadataStore, pk: &str, sk: &str, holder: &str) -> Result<()> {
    if let Some(item) = store.get(pk, sk).await?
        && item.str("holder") == Some(holder)
    {
        match store
            .delete(pk, sk, Condition::VersionIs(item.version))
            .await
        {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
