//! The ACLs of the cluster as the metadata log holds them (Kafka's AccessControlEntryRecord and
//! RemoveAccessControlEntryRecord): one entry per binding, with an id, and an index by resource
//! pattern for the authorizer. The codes are Kafka's (`ResourceType`, `PatternType`,
//! `AclOperation`, `AclPermissionType`); what they mean for a request is the broker's authorizer.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Kafka's `PatternType.LITERAL`.
pub const PATTERN_LITERAL: i8 = 3;
/// Kafka's `PatternType.PREFIXED`.
pub const PATTERN_PREFIXED: i8 = 4;

/// One ACL binding: a resource pattern and an access control entry, as Kafka's
/// AccessControlEntryRecord carries them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclEntry {
    /// Resource type code (2 topic, 3 group, 4 cluster, 5 transactional id, 6 delegation token).
    pub resource_type: i8,
    /// Resource name (`*` with a literal pattern: every resource of the type).
    pub resource_name: String,
    /// Pattern type code (3 literal, 4 prefixed).
    pub pattern_type: i8,
    /// Principal, `Type:name` (`User:*` for every user).
    pub principal: String,
    /// Host (client IP address) or `*`.
    pub host: String,
    /// Operation code (2 all, 3 read, 4 write, ...).
    pub operation: i8,
    /// Permission type code (2 deny, 3 allow).
    pub permission_type: i8,
}

/// Every ACL of the cluster, by id, with an index by (resource type, resource name, pattern
/// type).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclImage {
    /// ACLs by id.
    pub by_id: BTreeMap<Uuid, AclEntry>,
    by_pattern: BTreeMap<(i8, String, i8), BTreeSet<Uuid>>,
}

impl AclImage {
    /// Adds (or replaces) the ACL with this id.
    pub fn insert(&mut self, id: Uuid, acl: AclEntry) {
        self.remove(&id);
        self.by_pattern
            .entry((
                acl.resource_type,
                acl.resource_name.clone(),
                acl.pattern_type,
            ))
            .or_default()
            .insert(id);
        self.by_id.insert(id, acl);
    }

    /// Removes the ACL with this id (nothing if there is none).
    pub fn remove(&mut self, id: &Uuid) {
        if let Some(acl) = self.by_id.remove(id) {
            let key = (acl.resource_type, acl.resource_name, acl.pattern_type);
            if let Some(ids) = self.by_pattern.get_mut(&key) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_pattern.remove(&key);
                }
            }
        }
    }

    /// Whether no ACL exists.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The ACLs of one exact pattern: (resource type, resource name, pattern type).
    pub fn with_pattern<'a>(
        &'a self,
        resource_type: i8,
        resource_name: &str,
        pattern_type: i8,
    ) -> impl Iterator<Item = (&'a Uuid, &'a AclEntry)> + 'a {
        self.by_pattern
            .get(&(resource_type, resource_name.to_string(), pattern_type))
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get_key_value(id))
    }

    /// The id of an ACL equal to `acl`, if one exists.
    pub fn find(&self, acl: &AclEntry) -> Option<Uuid> {
        self.with_pattern(acl.resource_type, &acl.resource_name, acl.pattern_type)
            .find(|(_, a)| *a == acl)
            .map(|(id, _)| *id)
    }

    /// The ACLs whose pattern applies to the resource (`resource_type`, `name`): literal ones on
    /// the name, the literal wildcard `*`, and prefixed ones on any prefix of the name.
    pub fn matching<'a>(
        &'a self,
        resource_type: i8,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AclEntry> + 'a {
        let literal = self.with_pattern(resource_type, name, PATTERN_LITERAL);
        let wildcard = (name != "*")
            .then(|| self.with_pattern(resource_type, "*", PATTERN_LITERAL))
            .into_iter()
            .flatten();
        let prefixed = name
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .flat_map(move |end| self.with_pattern(resource_type, &name[..end], PATTERN_PREFIXED));
        literal.chain(wildcard).chain(prefixed).map(|(_, a)| a)
    }

    /// Every ACL of a resource type.
    pub fn of_type(&self, resource_type: i8) -> impl Iterator<Item = &AclEntry> + '_ {
        self.by_pattern
            .range((resource_type, String::new(), i8::MIN)..)
            .take_while(move |((rt, _, _), _)| *rt == resource_type)
            .flat_map(|(_, ids)| ids.iter().filter_map(|id| self.by_id.get(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: i8, name: &str, pt: i8) -> AclEntry {
        AclEntry {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: "User:a".into(),
            host: "*".into(),
            operation: 3,
            permission_type: 3,
        }
    }

    #[test]
    fn matching_finds_literal_wildcard_and_prefixes_only() {
        let mut img = AclImage::default();
        let entries = [
            acl(2, "foobar", PATTERN_LITERAL),
            acl(2, "foo", PATTERN_LITERAL),
            acl(2, "*", PATTERN_LITERAL),
            acl(2, "foo", PATTERN_PREFIXED),
            acl(2, "f", PATTERN_PREFIXED),
            acl(2, "foobarx", PATTERN_PREFIXED),
            acl(2, "g", PATTERN_PREFIXED),
            acl(3, "foobar", PATTERN_LITERAL),
            acl(2, "*", PATTERN_PREFIXED),
        ];
        for e in &entries {
            img.insert(Uuid::new_v4(), e.clone());
        }
        let mut got: Vec<_> = img
            .matching(2, "foobar")
            .map(|a| (a.resource_name.as_str(), a.pattern_type))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("*", PATTERN_LITERAL),
                ("f", PATTERN_PREFIXED),
                ("foo", PATTERN_PREFIXED),
                ("foobar", PATTERN_LITERAL)
            ]
        );
        assert_eq!(img.of_type(3).count(), 1);
        assert_eq!(img.of_type(2).count(), 8);
        let id = img.find(&entries[0]).unwrap();
        img.remove(&id);
        assert!(img.find(&entries[0]).is_none());
        assert_eq!(img.matching(2, "foobar").count(), 3);
        // Non-ASCII names are cut at character boundaries.
        img.insert(Uuid::new_v4(), acl(2, "é", PATTERN_PREFIXED));
        assert_eq!(
            img.matching(2, "éa")
                .filter(|a| a.pattern_type == PATTERN_PREFIXED)
                .count(),
            1
        );
    }
}
