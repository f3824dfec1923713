//! Schema migrations, applied in order at open, each in the opening transaction (so a
//! crash leaves the old version intact); the check that refuses a newer database lives
//! here too.

use heed::RwTxn;

use super::{nodes, schema::SCHEMA_VERSION, schema::META_SCHEMA_VERSION, Dbs, Result, StoreError};
use crate::model::Timestamp;

/// Brings a database at `found` up to `SCHEMA_VERSION`, or refuses one that is newer.
pub(super) fn migrate(dbs: &Dbs, wtxn: &mut RwTxn, found: u32) -> Result<()> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    if found < 2 {
        v1_to_v2(dbs, wtxn)?;
    }
    dbs.meta.put(wtxn, META_SCHEMA_VERSION, &SCHEMA_VERSION.to_be_bytes())?;
    Ok(())
}

/// Version 2 added the content store and snapshots: two record databases (created empty
/// at open) and the fixed directories `content/{sha256,sha512}/` and `snapshots/`.
fn v1_to_v2(dbs: &Dbs, wtxn: &mut RwTxn) -> Result<()> {
    log::info!("migrating the store from schema 1 to 2: adding content/ and snapshots/");
    nodes::link_v2_fixed_nodes(dbs, wtxn, Timestamp::now())
}
