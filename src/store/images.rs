//! Image directories and image records: create, put target, update, delete.
//! Each call validates first, then writes, inside the caller's one transaction.

use super::nodes::{Node, NodeId, NodeKind};
use super::{schema, Result, StoreError, StoreRead, Writer};
use crate::model::event::Published;
use crate::model::{validate_component, Descriptor, Image, Timestamp, ValidationError};

impl Writer<'_> {
    /// `mkdir images/.../name`: a new image directory (a name prefix until it has a target).
    pub fn create_image_dir(&mut self, parent: NodeId, name: &str) -> Result<Node> {
        validate_component(name)?;
        let parent_node = self.node(parent)?.ok_or_else(|| not_found("directory", parent))?;
        if !matches!(parent_node.kind, NodeKind::ImagesDir | NodeKind::ImageDir) {
            return Err(StoreError::NotPermitted(format!("{:?} cannot hold image directories", parent_node.name)));
        }
        self.insert_node(parent, name, NodeKind::ImageDir, Timestamp::now())
    }

    /// Writes an image's target: creates the record on first write (containerd's Put),
    /// replaces the target afterwards. `text` is the document as written, kept when it is
    /// not the descriptor's own rendering. The target it already has changes nothing.
    pub fn put_image_target(&mut self, dir: NodeId, target: Descriptor, text: Option<String>) -> Result<Image> {
        target.validate()?;
        let node = self.image_dir(dir)?;
        let now = Timestamp::now();
        let text = text.filter(|t| *t != target.render());
        let before = self.image(dir)?;
        let image = match before.clone() {
            Some(image) if image.target.as_ref() == Some(&target) && image.target_text == text => return Ok(image),
            Some(mut image) => {
                image.target = Some(target.clone());
                image.target_text = text;
                image.updated_at = now;
                self.put_image_record(dir, &image)?;
                self.clear_times(dir, &["target"])?;
                image
            }
            None => {
                let image = Image { target_text: text, ..Image::new(self.image_name(&node)?, target.clone(), now) };
                self.put_image_record(dir, &image)?;
                self.clear_times(dir, &["target", "labels"])?;
                image
            }
        };
        // (What the image reaches lost its ingest leases when the index took the target.)
        self.publish_image_change(before.as_ref(), Some(&image));
        Ok(image)
    }

    /// Takes an image's target away: its labels stay in a record that is not an image
    /// (until a target comes again), and without labels the directory is a name prefix.
    pub fn clear_image_target(&mut self, dir: NodeId) -> Result<()> {
        self.image_dir(dir)?;
        let before = self.image(dir)?;
        self.publish_image_change(before.as_ref(), None);
        match before {
            Some(mut image) if !image.labels.is_empty() => {
                image.target = None;
                image.target_text = None;
                image.updated_at = Timestamp::now();
                self.put_image_record(dir, &image)?;
                self.clear_times(dir, &["target"])?;
            }
            Some(_) => {
                self.delete_image_record(dir)?;
                self.clear_times(dir, &["target", "labels"])?;
            }
            None => {}
        }
        Ok(())
    }

    /// Changes the labels of image directory `dir`, making a record for them when it has
    /// none yet (labels before the target); a record left with neither goes.
    pub(super) fn update_image_labels(
        &mut self,
        dir: NodeId,
        change: impl FnOnce(&mut crate::model::Labels) -> Result<(), ValidationError>,
    ) -> Result<Image> {
        let node = self.image_dir(dir)?;
        let mut image = match self.image(dir)? {
            Some(image) => image,
            None => Image::pending(self.image_name(&node)?, Timestamp::now()),
        };
        let before = image.labels.clone();
        change(&mut image.labels)?;
        if image.labels == before && self.image(dir)?.is_some() {
            return Ok(image);
        }
        image.updated_at = Timestamp::now();
        if image.target.is_none() && image.labels.is_empty() {
            self.delete_image_record(dir)?;
        } else {
            self.put_image_record(dir, &image)?;
        }
        self.clear_times(dir, &["labels"])?;
        self.publish_image_change(Some(&image), Some(&image));
        Ok(image)
    }

    /// Applies `change` to an existing image record and stamps `updated_at`.
    pub fn update_image(
        &mut self,
        dir: NodeId,
        change: impl FnOnce(&mut Image) -> Result<(), ValidationError>,
    ) -> Result<Image> {
        let before = self.image(dir)?.ok_or_else(|| not_found("image", dir))?;
        let mut image = before.clone();
        change(&mut image)?;
        if let Some(target) = &image.target {
            target.validate()?;
        }
        if image == before {
            return Ok(image);
        }
        let mut changed = Vec::new();
        if image.target != before.target || image.target_text != before.target_text {
            changed.push("target");
        }
        if image.labels != before.labels {
            changed.push("labels");
        }
        image.updated_at = Timestamp::now();
        self.put_image_record(dir, &image)?;
        self.clear_times(dir, &changed)?;
        self.publish_image_change(Some(&before), Some(&image));
        Ok(image)
    }

    /// `rmdir images/.../name`: deletes the directory and its record; refuses while it
    /// has child directories.
    pub fn delete_image_dir(&mut self, parent: NodeId, name: &str) -> Result<(Node, Option<Image>)> {
        let node = self
            .lookup(parent, name)?
            .filter(|n| n.kind == NodeKind::ImageDir)
            .ok_or_else(|| StoreError::NotFound { kind: "image", key: name.into() })?;
        self.remove_node(&node, Timestamp::now())?;
        let before = self.image(node.id)?;
        self.publish_image_change(before.as_ref(), None);
        self.delete_image_record(node.id)?;
        Ok((node, before))
    }

    /// Publishes what a committed change of an image record means to containerd: a name
    /// becomes an image with its first target (`create`), an image changes (`update`), or
    /// stops being one (`delete`). A record without a target (labels written first) is
    /// no image, and its changes publish nothing.
    fn publish_image_change(&mut self, before: Option<&Image>, after: Option<&Image>) {
        let was = before.filter(|i| i.is_image());
        let is = after.filter(|i| i.is_image());
        let event = match (was, is) {
            (None, Some(i)) => Published::image_put(&i.name, &i.labels, true),
            (Some(_), Some(i)) => Published::image_put(&i.name, &i.labels, false),
            (Some(i), None) => Published::ImageDelete { name: i.name.clone() },
            (None, None) => return,
        };
        self.publish(event);
    }

    fn image_dir(&self, dir: NodeId) -> Result<Node> {
        self.node(dir)?.filter(|n| n.kind == NodeKind::ImageDir).ok_or_else(|| not_found("image directory", dir))
    }
}

/// Resolves an image name (`a/b/c`) to its directory node, walking one point read per
/// component.
pub fn resolve_image_dir(reader: &impl StoreRead, name: &str) -> Result<Option<Node>> {
    let mut current = schema::IMAGES;
    let mut found = None;
    for component in name.split('/') {
        match reader.lookup(current, component)? {
            Some(node) if node.kind == NodeKind::ImageDir => {
                current = node.id;
                found = Some(node);
            }
            _ => return Ok(None),
        }
    }
    Ok(found)
}

trait ImageNames {
    fn image_name(&self, node: &Node) -> Result<String>;
}

impl<R: StoreRead> ImageNames for R {
    /// The full name of an image directory: its path below `images/`.
    fn image_name(&self, node: &Node) -> Result<String> {
        let mut components = vec![node.name.clone()];
        let mut parent = node.parent;
        while parent != schema::IMAGES {
            let p = self.node(parent)?.ok_or_else(|| not_found("image directory", parent))?;
            if p.kind != NodeKind::ImageDir {
                return Err(StoreError::Corrupt(format!("image directory {} under a {:?}", node.id.0, p.kind)));
            }
            components.push(p.name);
            parent = p.parent;
        }
        components.reverse();
        Ok(components.join("/"))
    }
}

fn not_found(kind: &'static str, id: NodeId) -> StoreError {
    StoreError::NotFound { kind, key: format!("node {}", id.0) }
}
