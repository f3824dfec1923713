//! Images: a name (a chain of directories under `images/`) pointing at a target
//! descriptor, with labels. Deleting one collects the content and layers only it kept.

use super::{Result, ServiceError, Services};
use crate::model::{BlobState, Descriptor};
use crate::model::oci::MAX_DOCUMENT_BYTES;
use crate::store::{Node, NodeId, StoreRead};

impl Services {
    /// `mkdir` of `name` in image directory `parent`: a name prefix, an image once it has
    /// a target.
    pub fn create_image_dir(&self, parent: NodeId, name: &str) -> Result<Node> {
        Ok(self.store.write(|w| w.create_image_dir(parent, name))?)
    }

    /// Deletes image directory `name` of `parent` (refused while it has child images),
    /// then collects what only it referenced (a name prefix referenced nothing: no
    /// collection).
    pub fn delete_image_dir(&self, parent: NodeId, name: &str) -> Result<Node> {
        let (node, record) = self.store.write(|w| w.delete_image_dir(parent, name))?;
        let referenced = record.is_some_and(|i| i.references_anything());
        if referenced {
            self.collect_after_delete();
        }
        Ok(node)
    }

    /// Sets image `node`'s target, checked against its blob when that is here.
    pub(super) fn set_target(&self, node: NodeId, target: Descriptor, text: Option<String>) -> Result<()> {
        self.check_target(&target)?;
        self.store.write(|w| w.put_image_target(node, target, text))?;
        Ok(())
    }

    /// An image's new target, checked against its blob when the blob is here: an index or
    /// manifest must parse as one, and the size must be the blob's. (A target written
    /// before its blobs are copied is accepted; unpacking checks it again.)
    /// Takes image `node`'s target away: it is a name prefix again, and what only its
    /// target reached is collected once nothing pins it.
    pub(super) fn clear_target(&self, node: NodeId) -> Result<()> {
        self.store.write(|w| w.clear_image_target(node))?;
        Ok(())
    }

    fn check_target(&self, target: &crate::model::Descriptor) -> Result<()> {
        let Some(res) = self.resources.as_deref() else { return Ok(()) };
        let Some((_, blob)) = self.store.read()?.blob_by_digest(&target.digest)? else { return Ok(()) };
        if blob.state != BlobState::Committed {
            return Ok(());
        }
        let invalid = |reason: String| ServiceError::from(crate::model::ValidationError::InvalidImage { reason });
        if u64::try_from(target.size).ok() != Some(blob.size) {
            return Err(invalid(format!("target size is {}, but blob {} has {} bytes", target.size, blob.digest, blob.size)));
        }
        if crate::model::oci::is_document_media_type(&target.media_type) {
            let bytes = res.content.read_small(&target.digest, MAX_DOCUMENT_BYTES)?;
            crate::model::oci::Document::parse(&target.media_type, &bytes)?;
        }
        Ok(())
    }

}
