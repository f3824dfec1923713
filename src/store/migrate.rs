//! Schema migrations, applied in order at open. Version 1 is the first layout, so there is
//! nothing to migrate yet; the check that refuses a newer database lives here too.

use heed::RwTxn;

use super::{schema::SCHEMA_VERSION, Dbs, Result, StoreError};

/// Brings a database at `found` up to `SCHEMA_VERSION`, or refuses one that is newer.
pub(super) fn migrate(_dbs: &Dbs, _wtxn: &mut RwTxn, found: u32) -> Result<()> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    // Future steps: `if found < 2 { v1_to_v2(dbs, wtxn)? }`, each with its own test.
    Ok(())
}
