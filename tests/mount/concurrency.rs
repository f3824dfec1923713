//! Parallel writers through one mount: nothing lost, nothing duplicated.

use std::collections::BTreeSet;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crate::common::*;

const WRITERS: usize = 8;
const PER_WRITER: usize = 200;

#[test]
fn eight_writers_create_and_label_1600_containers() {
    let fx = MountFixture::new();
    let containers = fx.path("containers");
    let done = AtomicBool::new(false);

    thread::scope(|s| {
        // A concurrent lister: readdir must not duplicate names, and with creations only,
        // a name once listed is in every later listing.
        let lister = s.spawn(|| {
            let mut seen = BTreeSet::new();
            let mut listings = 0;
            while !done.load(Ordering::Relaxed) {
                let names: Vec<String> = fs::read_dir(&containers)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                let set: BTreeSet<String> = names.iter().cloned().collect();
                assert_eq!(set.len(), names.len(), "a listing repeated names");
                let lost: Vec<_> = seen.difference(&set).collect();
                assert!(lost.is_empty(), "listed before, missing now: {lost:?}");
                seen = set;
                listings += 1;
            }
            listings
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|t| {
                let containers = &containers;
                s.spawn(move || {
                    for i in 0..PER_WRITER {
                        let dir = containers.join(format!("w{t}-{i}"));
                        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir w{t}-{i}: {e}"));
                        append(&dir.join("labels"), format!("owner=w{t}\n"));
                        append(&dir.join("labels"), format!("idx={i}\n"));
                    }
                })
            })
            .collect();
        // Stop the lister before re-raising a writer's panic, or the scope never ends.
        let results: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        done.store(true, Ordering::Relaxed);
        let listings = lister.join();
        for r in results {
            if let Err(panic) = r {
                std::panic::resume_unwind(panic);
            }
        }
        assert!(listings.unwrap() > 0);
    });

    let names = ls(&containers);
    assert_eq!(names.len(), WRITERS * PER_WRITER);
    for t in 0..WRITERS {
        for i in 0..PER_WRITER {
            let labels = read(&containers.join(format!("w{t}-{i}/labels")));
            assert_eq!(
                labels,
                format!("idx={i}\nowner=w{t}\n"),
                "labels of w{t}-{i}"
            );
        }
    }
}

#[test]
fn concurrent_appends_to_one_labels_file_lose_no_key() {
    let fx = MountFixture::new();
    fs::create_dir(fx.path("containers/shared")).unwrap();
    let labels = fx.path("containers/shared/labels");
    let dir = fx.path("containers/shared");
    const KEYS: usize = 25;

    thread::scope(|s| {
        for t in 0..WRITERS {
            let (labels, dir) = (&labels, &dir);
            s.spawn(move || {
                for j in 0..KEYS {
                    // Half the writers go through the file, half through xattrs: both merge.
                    if t % 2 == 0 {
                        append(labels, format!("t{t}k{j:02}=v{j}\n"));
                    } else {
                        set_xattr(
                            dir,
                            &format!("user.t{t}k{j:02}"),
                            format!("v{j}").as_bytes(),
                            0,
                        )
                        .unwrap_or_else(|e| panic!("setxattr t{t}k{j}: {e}"));
                    }
                }
            });
        }
    });

    let mut want = Vec::new();
    for t in 0..WRITERS {
        for j in 0..KEYS {
            want.push(format!("t{t}k{j:02}=v{j}"));
        }
    }
    want.sort();
    let got = read(&labels);
    assert_eq!(got.lines().collect::<Vec<_>>(), want);
}
