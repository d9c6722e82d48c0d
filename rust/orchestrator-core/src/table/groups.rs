//! Groups of slots a request can be restricted to: every model's logical
//! name (the set of its deployments: `"gpt-4o"` is `"gpt-4o"` itself and
//! every `"gpt-4o@<deployment>"`) and the routing aliases (`"cheap"` →
//! `["m1", "gpt-4o@azure-eu"]`). Each group is a bitset of slots, so the
//! eligibility pass checks membership with one shift and mask per slot.
//!
//! Aliases and model names share one namespace. An alias member is a
//! logical name (then every deployment of that model is a member, including
//! ones registered later) or one registered model; an unregistered model
//! drops out of every alias (a logical member once its last deployment is
//! gone). Group ids are valid while the table's lock is held: requests
//! resolve names to ids under the same lock they are selected under.

use rustc_hash::FxHashMap;

use crate::error::CoreError;
use crate::spec::{Constraints, ModelSpec};

use super::Table;

/// A set of slots, one bit each.
#[derive(Debug, Clone, Default)]
struct SlotSet {
    words: Vec<u64>,
}

impl SlotSet {
    fn insert(&mut self, slot: usize) {
        let word = slot / 64;
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (slot % 64);
    }

    fn remove(&mut self, slot: usize) {
        if let Some(word) = self.words.get_mut(slot / 64) {
            *word &= !(1 << (slot % 64));
        }
    }

    #[inline(always)]
    fn contains(&self, slot: usize) -> bool {
        self.words
            .get(slot / 64)
            .is_some_and(|word| word >> (slot % 64) & 1 != 0)
    }

    fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            (0..64)
                .filter(move |bit| word >> bit & 1 != 0)
                .map(move |bit| w * 64 + bit)
        })
    }
}

/// What a group is: a model's deployments, or an alias and its members.
#[derive(Debug, Clone)]
enum Kind {
    Model,
    Alias { members: Vec<String> },
}

#[derive(Debug, Clone)]
struct Group {
    name: String,
    kind: Kind,
    slots: SlotSet,
}

/// Every group of a table, by id and by name.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    groups: Vec<Option<Group>>,
    by_name: FxHashMap<String, u32>,
}

impl Groups {
    #[inline(always)]
    pub fn contains(&self, group: u32, slot: usize) -> bool {
        self.groups[group as usize]
            .as_ref()
            .is_some_and(|g| g.slots.contains(slot))
    }

    fn add(&mut self, group: Group) -> u32 {
        let name = group.name.clone();
        let id = match self.groups.iter().position(Option::is_none) {
            Some(free) => {
                self.groups[free] = Some(group);
                free
            }
            None => {
                self.groups.push(Some(group));
                self.groups.len() - 1
            }
        } as u32;
        self.by_name.insert(name, id);
        id
    }

    fn get(&self, name: &str) -> Option<&Group> {
        self.by_name
            .get(name)
            .and_then(|&id| self.groups[id as usize].as_ref())
    }

    fn drop_group(&mut self, name: &str) -> Option<Group> {
        let id = self.by_name.remove(name)?;
        self.groups[id as usize].take()
    }
}

/// The most members one alias may name.
pub const MAX_ALIAS_MEMBERS: usize = 10_000;

impl Table {
    /// Whether `name` is taken in the namespace models and aliases share.
    fn name_taken(&self, name: &str) -> Option<&'static str> {
        match self.groups.get(name).map(|g| &g.kind) {
            Some(Kind::Alias { .. }) => Some("a routing alias"),
            Some(Kind::Model) => Some("a model"),
            None if self.by_name.contains_key(name) => Some("a model"),
            None => None,
        }
    }

    /// Refuse to register `spec` when its name, or its logical name, is an alias.
    pub(super) fn check_no_alias_named(&self, spec: &ModelSpec) -> Result<(), CoreError> {
        for name in [spec.name.as_str(), spec.model_name()] {
            if let Some(Kind::Alias { .. }) = self.groups.get(name).map(|g| &g.kind) {
                return Err(CoreError::NameInUse {
                    name: name.to_owned(),
                    by: "a routing alias",
                });
            }
        }
        Ok(())
    }

    /// A model was registered in `slot`: it joins its logical model's group
    /// and every alias naming that logical model.
    pub(super) fn join_groups(&mut self, slot: usize) {
        let model = self.specs[slot].model_name().to_owned();
        match self.groups.by_name.get(&model) {
            Some(&id) => {
                if let Some(g) = self.groups.groups[id as usize].as_mut() {
                    g.slots.insert(slot);
                }
            }
            None => {
                let mut slots = SlotSet::default();
                slots.insert(slot);
                self.groups.add(Group {
                    name: model.clone(),
                    kind: Kind::Model,
                    slots,
                });
            }
        }
        for g in self.groups.groups.iter_mut().flatten() {
            if let Kind::Alias { members } = &g.kind {
                if members.contains(&model) {
                    g.slots.insert(slot);
                }
            }
        }
    }

    /// The model in `slot` is being unregistered: it leaves every group; a
    /// logical model without deployments is gone, and so is every alias
    /// member naming only what left.
    pub(super) fn leave_groups(&mut self, slot: usize) {
        let name = self.specs[slot].name.clone();
        let model = self.specs[slot].model_name().to_owned();
        let mut model_gone = false;
        if let Some(&id) = self.groups.by_name.get(&model) {
            if let Some(g) = self.groups.groups[id as usize].as_mut() {
                g.slots.remove(slot);
                model_gone = g.slots.is_empty() && matches!(g.kind, Kind::Model);
            }
        }
        if model_gone {
            self.groups.drop_group(&model);
        }
        for g in self.groups.groups.iter_mut().flatten() {
            if let Kind::Alias { members } = &mut g.kind {
                g.slots.remove(slot);
                // A member naming the logical model stays while it has deployments.
                members.retain(|m| if *m == model { !model_gone } else { *m != name });
            }
        }
    }

    /// Add the routing alias `name` for `members` (logical model names or
    /// registered models' names; at least one). The name must not be a
    /// model's or another alias's; nothing changes on an error.
    pub fn add_alias<S: AsRef<str>>(&mut self, name: &str, members: &[S]) -> Result<(), CoreError> {
        if name.trim().is_empty() {
            return Err(CoreError::invalid("alias", format!("{name:?}")));
        }
        if let Some(by) = self.name_taken(name) {
            return Err(CoreError::NameInUse {
                name: name.to_owned(),
                by,
            });
        }
        if members.is_empty() || members.len() > MAX_ALIAS_MEMBERS {
            return Err(CoreError::invalid(
                "members",
                format!(
                    "{} names (an alias names 1 to {MAX_ALIAS_MEMBERS} models)",
                    members.len()
                ),
            ));
        }
        let mut slots = SlotSet::default();
        let mut names: Vec<String> = Vec::with_capacity(members.len());
        for member in members {
            let member = member.as_ref();
            match self.groups.get(member) {
                Some(Group {
                    kind: Kind::Alias { .. },
                    ..
                }) => {
                    return Err(CoreError::invalid(
                        "members",
                        format!("{member:?} is an alias (an alias names models, not aliases)"),
                    ))
                }
                Some(g) => g.slots.slots().for_each(|s| slots.insert(s)),
                None => match self.by_name.get(member) {
                    Some(&slot) => slots.insert(slot as usize),
                    None => return Err(CoreError::UnknownModel(member.to_owned())),
                },
            }
            if !names.iter().any(|n| n == member) {
                names.push(member.to_owned());
            }
        }
        self.groups.add(Group {
            name: name.to_owned(),
            kind: Kind::Alias { members: names },
            slots,
        });
        Ok(())
    }

    /// Remove the routing alias `name`; returns its members.
    pub fn remove_alias(&mut self, name: &str) -> Result<Vec<String>, CoreError> {
        match self.groups.get(name).map(|g| &g.kind) {
            Some(Kind::Alias { .. }) => {}
            _ => return Err(CoreError::UnknownAlias(name.to_owned())),
        }
        match self.groups.drop_group(name).map(|g| g.kind) {
            Some(Kind::Alias { members }) => Ok(members),
            _ => Err(CoreError::UnknownAlias(name.to_owned())),
        }
    }

    /// Every routing alias with its members, by name.
    pub fn aliases(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = self
            .groups
            .groups
            .iter()
            .flatten()
            .filter_map(|g| match &g.kind {
                Kind::Alias { members } => Some((g.name.clone(), members.clone())),
                Kind::Model => None,
            })
            .collect();
        out.sort();
        out
    }

    /// The slots of the alias or logical model `name`, in slot order.
    pub fn group_slots(&self, name: &str) -> Option<Vec<u32>> {
        self.groups
            .get(name)
            .map(|g| g.slots.slots().map(|s| s as u32).collect())
    }

    /// Restrict `c` to the alias or logical model `name`; `false` when no
    /// alias or model has that name.
    pub fn restrict_to(&self, c: &mut Constraints, name: &str) -> bool {
        match self.groups.by_name.get(name) {
            Some(&id) => {
                c.group = Some(id);
                true
            }
            None => false,
        }
    }

    /// Exclude `name` from `c`: every deployment of a logical model, or one
    /// registered model; `false` when nothing has that name.
    pub fn exclude(&self, c: &mut Constraints, name: &str) -> bool {
        match self.groups.get(name) {
            Some(Group {
                kind: Kind::Model,
                slots,
                ..
            }) => {
                c.exclude.extend(slots.slots().map(|s| s as u32));
                true
            }
            _ => match self.by_name.get(name) {
                Some(&slot) => {
                    c.exclude.push(slot);
                    true
                }
                None => false,
            },
        }
    }

    /// The name of group `id` (an alias or a logical model).
    pub(super) fn group_name(&self, id: u32) -> &str {
        self.groups
            .groups
            .get(id as usize)
            .and_then(Option::as_ref)
            .map_or("", |g| g.name.as_str())
    }

    /// Whether group `id` is an alias (else a logical model).
    pub(super) fn group_is_alias(&self, id: u32) -> bool {
        self.groups
            .groups
            .get(id as usize)
            .and_then(Option::as_ref)
            .is_some_and(|g| matches!(g.kind, Kind::Alias { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{qualified_name, Rejection};
    use crate::verdict::Verdict;

    fn spec(model: &str, deployment: Option<&str>) -> ModelSpec {
        ModelSpec {
            name: qualified_name(model, deployment),
            deployment: deployment.map(str::to_owned),
            ..crate::table::tests::spec(model, &[], 1.0)
        }
    }

    fn any() -> Constraints {
        Constraints::new(0, None, None, None, vec![], None, None).unwrap()
    }

    fn eligible(t: &Table, c: &Constraints) -> Vec<u32> {
        t.explain(c)
            .into_iter()
            .filter(|e| matches!(e.verdict, Verdict::Eligible(_)))
            .map(|e| e.slot)
            .collect()
    }

    #[test]
    fn a_logical_name_groups_its_deployments() {
        let mut t = Table::default();
        t.register(spec("gpt-4o", Some("openai"))).unwrap();
        t.register(spec("small", None)).unwrap();
        t.register(spec("gpt-4o", Some("azure"))).unwrap();
        assert_eq!(t.group_slots("gpt-4o"), Some(vec![0, 2]));
        let mut c = any();
        assert!(t.restrict_to(&mut c, "gpt-4o"));
        assert_eq!(eligible(&t, &c), [0, 2]);
        assert_eq!(
            t.describe(&Rejection::NotInGroup(c.group.unwrap()), &c),
            "not a deployment of gpt-4o"
        );
        let mut c = any();
        assert!(t.exclude(&mut c, "gpt-4o"));
        assert_eq!(eligible(&t, &c), [1]);
        t.unregister("gpt-4o@openai").unwrap();
        t.unregister("gpt-4o@azure").unwrap();
        assert_eq!(t.group_slots("gpt-4o"), None);
    }

    #[test]
    fn aliases_follow_registrations_and_share_the_namespace() {
        let mut t = Table::default();
        t.register(spec("a", None)).unwrap();
        t.register(spec("m", Some("x"))).unwrap();
        t.add_alias("pool", &["a", "m"]).unwrap();
        t.register(spec("m", Some("y"))).unwrap();
        assert_eq!(t.group_slots("pool"), Some(vec![0, 1, 2]));
        assert!(matches!(
            t.add_alias("m", &["a"]),
            Err(CoreError::NameInUse { .. })
        ));
        assert!(matches!(
            t.register(spec("pool", Some("z"))),
            Err(CoreError::NameInUse { .. })
        ));
        assert_eq!(
            t.add_alias("p2", &["a", "nope"]),
            Err(CoreError::UnknownModel("nope".into()))
        );
        assert!(t.add_alias("p2", &["pool"]).is_err());
        assert!(t.aliases().iter().all(|(n, _)| n == "pool"));
        t.unregister("a").unwrap();
        t.unregister("m@x").unwrap();
        assert_eq!(t.aliases(), [("pool".to_owned(), vec!["m".to_owned()])]);
        t.register(spec("a", None)).unwrap();
        assert_eq!(t.group_slots("pool"), Some(vec![2]), "a dropped out");
        t.register(spec("m", None)).unwrap();
        t.unregister("m").unwrap(); // the plain model goes, m@y stays: so does member "m"
        assert_eq!(t.aliases(), [("pool".to_owned(), vec!["m".to_owned()])]);
        assert_eq!(t.remove_alias("pool").unwrap(), ["m"]);
        assert_eq!(
            t.remove_alias("pool"),
            Err(CoreError::UnknownAlias("pool".into()))
        );
        t.register(spec("pool", None)).unwrap();
    }

    #[test]
    fn a_deployment_spec_must_name_its_deployment() {
        let mut bad = spec("m", Some("x"));
        bad.name = "m@y".to_owned();
        assert!(bad.validate().is_err());
        bad.name = "@x".to_owned();
        assert!(bad.validate().is_err());
        let mut bad = spec("m", Some("x"));
        bad.deployment = Some("a@b".to_owned());
        bad.name = "m@a@b".to_owned();
        assert!(bad.validate().is_err());
        assert_eq!(spec("m", Some("x")).model_name(), "m");
    }
}
