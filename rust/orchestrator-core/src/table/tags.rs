//! Tags: names a model is labelled with (`"eu"`, `"zero-retention"`) and a
//! request can require. The table interns each distinct name as one bit of
//! a `u64`, so a slot's tags are one word and "has every required tag" is
//! one AND in the eligibility pass. A bit is held while any registered model
//! (or another holder, such as a budget scoped by the tag) uses the name,
//! and freed after the last release, so registrations that come and go
//! never exhaust the 64 bits.

use rustc_hash::FxHashMap;

use crate::error::CoreError;
use crate::spec::Constraints;

use super::Table;

/// The most distinct tags the models of one table may carry at once.
pub const MAX_TAGS: usize = 64;
/// The longest tag name, in bytes.
pub const MAX_TAG_BYTES: usize = 64;

/// Whether `name` is a valid tag: `[a-z0-9][a-z0-9_.:-]{0,63}`.
pub fn check_tag(name: &str) -> Result<(), CoreError> {
    let bytes = name.as_bytes();
    let lead_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes.iter().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
    });
    if lead_ok && rest_ok && bytes.len() <= MAX_TAG_BYTES {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "tags",
            format!(
                "{name:?} (a tag is 1 to {MAX_TAG_BYTES} characters of a-z, 0-9, _ . : -, \
                 starting with a letter or digit)"
            ),
        ))
    }
}

/// The interned tag names of one table: name to bit, bit to name (empty
/// for a free bit), and how many holders use each bit.
#[derive(Debug, Clone, Default)]
pub struct TagIndex {
    by_name: FxHashMap<String, u8>,
    names: Vec<String>,
    holders: Vec<u32>,
}

impl TagIndex {
    /// The bit mask of `names`, interning the new ones and counting one more
    /// holder of each. All or nothing: a bad name or a 65th distinct tag
    /// changes nothing.
    pub fn acquire<S: AsRef<str>>(&mut self, names: &[S]) -> Result<u64, CoreError> {
        let mut new: Vec<&str> = Vec::new();
        for name in names {
            let name = name.as_ref();
            check_tag(name)?;
            if !self.by_name.contains_key(name) && !new.contains(&name) {
                new.push(name);
            }
        }
        let free = self.names.iter().filter(|n| n.is_empty()).count() + MAX_TAGS - self.names.len();
        if new.len() > free {
            let in_use = MAX_TAGS - free;
            return Err(CoreError::invalid(
                "tags",
                format!(
                    "{:?} would be tag number {} of this registry, which holds at most \
                     {MAX_TAGS} distinct tags ({in_use} in use)",
                    new[free],
                    in_use + free + 1
                ),
            ));
        }
        for name in new {
            let bit = match self.names.iter().position(String::is_empty) {
                Some(bit) => {
                    self.names[bit] = name.to_owned();
                    bit
                }
                None => {
                    self.names.push(name.to_owned());
                    self.holders.push(0);
                    self.names.len() - 1
                }
            };
            self.by_name.insert(name.to_owned(), bit as u8);
        }
        let mut mask = 0u64;
        for name in names {
            mask |= 1 << self.by_name[name.as_ref()];
        }
        for bit in bits(mask) {
            self.holders[bit] += 1;
        }
        Ok(mask)
    }

    /// One holder of each tag in `mask` is gone; a tag no one holds any
    /// more frees its bit.
    pub fn release(&mut self, mask: u64) {
        for bit in bits(mask) {
            let Some(holders) = self.holders.get_mut(bit) else {
                continue;
            };
            *holders = holders.saturating_sub(1);
            if *holders == 0 {
                self.by_name.remove(&self.names[bit]);
                self.names[bit].clear();
            }
        }
    }

    /// The bit of a tag some holder uses, `None` for any other name.
    pub fn bit(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).map(|&bit| u32::from(bit))
    }

    /// The names of the tags in `mask`, in bit order.
    pub fn names(&self, mask: u64) -> Vec<&str> {
        bits(mask)
            .filter_map(|bit| self.names.get(bit).map(String::as_str))
            .collect()
    }

    /// How many distinct tags are in use.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl Table {
    /// Require every tag of `names` in `c`: known tags as bits, the names
    /// no registered model has as `unknown_tags` (nothing is eligible then).
    pub fn require_tags<S: AsRef<str>>(&self, c: &mut Constraints, names: &[S]) {
        for name in names {
            let name = name.as_ref();
            match self.tags.bit(name) {
                Some(bit) => c.required_tags |= 1 << bit,
                None if !c.unknown_tags.iter().any(|n| n == name) => {
                    c.unknown_tags.push(name.to_owned());
                }
                None => {}
            }
        }
    }

    /// The names of the tags `c` requires that slot `i` lacks, in the
    /// order of their bits, then the ones no model has.
    pub(super) fn missing_tag_names(&self, mask: u64, c: &Constraints) -> Vec<String> {
        let mut names: Vec<String> = self
            .tags
            .names(mask)
            .into_iter()
            .map(str::to_owned)
            .collect();
        names.extend(c.unknown_tags.iter().cloned());
        names
    }

    /// The tags of a slot, as bits of [`Table::tag_index`].
    pub fn tags_of(&self, slot: u32) -> Result<u64, CoreError> {
        let i = self.check_slot(slot)?;
        Ok(self.hot[i].tags)
    }

    /// The table's tag names and bits.
    pub fn tag_index(&self) -> &TagIndex {
        &self.tags
    }

    /// The table's tag names and bits, for another holder of a tag (a
    /// budget scoped by it keeps its bit by `acquire` until it `release`s).
    pub fn tag_index_mut(&mut self) -> &mut TagIndex {
        &mut self.tags
    }
}

/// The set bits of `mask`, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let bit = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            bit
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["eu", "zero-retention", "a", "tier:1", "v1.2_x"] {
            assert!(check_tag(good).is_ok(), "{good}");
        }
        let long = "a".repeat(MAX_TAG_BYTES + 1);
        for bad in ["", "EU", "-eu", "e u", "é", "eu\n", long.as_str()] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bits_are_shared_counted_and_freed() {
        let mut tags = TagIndex::default();
        let a = tags.acquire(&["eu", "zero-retention"]).unwrap();
        let b = tags.acquire(&["eu"]).unwrap();
        assert_eq!(a, 0b11);
        assert_eq!(b, 0b01);
        assert_eq!(tags.names(a), ["eu", "zero-retention"]);
        tags.release(a);
        assert_eq!(
            tags.bit("zero-retention"),
            None,
            "freed with its last holder"
        );
        assert_eq!(tags.bit("eu"), Some(0), "still held");
        assert_eq!(
            tags.acquire(&["us"]).unwrap(),
            0b10,
            "the freed bit is reused"
        );
    }

    #[test]
    fn the_65th_tag_is_refused_and_changes_nothing() {
        let mut tags = TagIndex::default();
        let names: Vec<String> = (0..MAX_TAGS).map(|i| format!("t{i}")).collect();
        let all = tags.acquire(&names).unwrap();
        assert_eq!(all, u64::MAX);
        let err = tags.acquire(&["t0", "one-more"]).unwrap_err();
        assert!(err.to_string().contains("at most 64"), "{err}");
        assert_eq!(tags.bit("one-more"), None);
        tags.release(1);
        assert_eq!(tags.acquire(&["one-more"]).unwrap(), 1);
        assert_eq!(tags.len(), MAX_TAGS);
    }
}
