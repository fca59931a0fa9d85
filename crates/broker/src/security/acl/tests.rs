//! The authorizer's decisions, case by case against Kafka's `StandardAuthorizer` semantics.

use std::collections::HashSet;

use runnel_metadata::{AclEntry, AclImage};
use uuid::Uuid;

use super::filter::AclFilter;
use super::AclOperation::{self, *};
use super::ResourceType::{self, *};
use super::*;

fn entry(
    rt: ResourceType,
    name: &str,
    pattern: i8,
    principal: &str,
    host: &str,
    op: AclOperation,
    permission: i8,
) -> AclEntry {
    AclEntry {
        resource_type: rt as i8,
        resource_name: name.into(),
        pattern_type: pattern,
        principal: principal.into(),
        host: host.into(),
        operation: op as i8,
        permission_type: permission,
    }
}

fn allow(rt: ResourceType, name: &str, pattern: i8, principal: &str, op: AclOperation) -> AclEntry {
    entry(rt, name, pattern, principal, "*", op, PERMISSION_ALLOW)
}

fn deny(rt: ResourceType, name: &str, pattern: i8, principal: &str, op: AclOperation) -> AclEntry {
    entry(rt, name, pattern, principal, "*", op, PERMISSION_DENY)
}

fn image(acls: &[AclEntry]) -> AclImage {
    let mut img = AclImage::default();
    for a in acls {
        img.insert(Uuid::new_v4(), a.clone());
    }
    img
}

fn authorizer() -> Authorizer {
    Authorizer::default()
}

struct Check<'a> {
    auth: &'a Authorizer,
    acls: &'a AclImage,
}

impl Check<'_> {
    fn can(&self, user: &str, host: &str, op: AclOperation, rt: ResourceType, name: &str) -> bool {
        let p = KafkaPrincipal::parse(user).unwrap();
        let who = Requester {
            principal: &p,
            host,
        };
        self.auth.authorize(self.acls, &who, op, rt, name)
    }
    fn alice(&self, op: AclOperation, rt: ResourceType, name: &str) -> bool {
        self.can("User:alice", "10.0.0.1", op, rt, name)
    }
    fn any(&self, user: &str, op: AclOperation, rt: ResourceType) -> bool {
        let p = KafkaPrincipal::parse(user).unwrap();
        let who = Requester {
            principal: &p,
            host: "10.0.0.1",
        };
        self.auth.authorize_any(self.acls, &who, op, rt)
    }
}

#[test]
fn without_acls_everything_is_denied_unless_allow_everyone_if_no_acl_found() {
    let acls = image(&[]);
    let auth = authorizer();
    let c = Check {
        auth: &auth,
        acls: &acls,
    };
    assert!(!c.alice(Read, Topic, "t"));
    assert!(!c.alice(Describe, Cluster, CLUSTER_NAME));
    let open = Authorizer {
        allow_if_no_acl: true,
        ..Authorizer::default()
    };
    let c = Check {
        auth: &open,
        acls: &acls,
    };
    assert!(c.alice(Read, Topic, "t"));
    assert!(c.alice(Alter, Cluster, CLUSTER_NAME));
}

#[test]
fn allow_everyone_if_no_acl_found_only_where_the_resource_has_no_acl_at_all() {
    // An ACL for bob on topic t: alice has no ACL that applies, but t has ACLs, so she is
    // refused even with allow.everyone.if.no.acl.found; topic u has none, so she may.
    let acls = image(&[allow(Topic, "t", LITERAL, "User:bob", Read)]);
    let open = Authorizer {
        allow_if_no_acl: true,
        ..Authorizer::default()
    };
    let c = Check {
        auth: &open,
        acls: &acls,
    };
    assert!(!c.alice(Read, Topic, "t"));
    assert!(c.can("User:bob", "1.2.3.4", Read, Topic, "t"));
    assert!(c.alice(Read, Topic, "u"));
    // A prefixed ACL counts as an ACL on every topic it covers; a wildcard on every topic.
    let acls = image(&[allow(Topic, "pay", PREFIXED, "User:bob", Read)]);
    let c = Check {
        auth: &open,
        acls: &acls,
    };
    assert!(!c.alice(Read, Topic, "payments"));
    assert!(c.alice(Read, Topic, "orders"));
    let acls = image(&[allow(Topic, "*", LITERAL, "User:bob", Read)]);
    let c = Check {
        auth: &open,
        acls: &acls,
    };
    assert!(!c.alice(Read, Topic, "orders"));
    // ACLs on another resource type do not count.
    assert!(c.alice(Read, Group, "orders"));
}

#[test]
fn literal_prefixed_and_wildcard_patterns() {
    let acls = image(&[
        allow(Topic, "orders", LITERAL, "User:alice", Read),
        allow(Topic, "pay", PREFIXED, "User:alice", Write),
        allow(Group, "*", LITERAL, "User:alice", Read),
    ]);
    let auth = authorizer();
    let c = Check {
        auth: &auth,
        acls: &acls,
    };
    assert!(c.alice(Read, Topic, "orders"));
    assert!(
        !c.alice(Read, Topic, "orders2"),
        "a literal names one topic"
    );
    assert!(!c.alice(Read, Topic, "order"));
    assert!(c.alice(Write, Topic, "pay"));
    assert!(c.alice(Write, Topic, "payments"));
    assert!(!c.alice(Write, Topic, "pa"));
    assert!(!c.alice(Write, Topic, "xpay"));
    assert!(c.alice(Read, Group, "any-group"));
    assert!(c.alice(Read, Group, "*"));
    assert!(
        !c.alice(Read, Topic, "any-topic"),
        "the wildcard is per resource type"
    );
    // A literal "*" is the wildcard; a prefixed "*" only covers names starting with '*'.
    let acls = image(&[allow(Topic, "*", PREFIXED, "User:alice", Read)]);
    let c = Check {
        auth: &auth,
        acls: &acls,
    };
    assert!(!c.alice(Read, Topic, "orders"));
    assert!(c.alice(Read, Topic, "*x"));
}

#[test]
fn deny_wins_over_allow_whatever_the_pattern() {
    let auth = authorizer();
    for (allow_acl, deny_acl) in [
        (
            allow(Topic, "*", LITERAL, "User:alice", Read),
            deny(Topic, "secret", LITERAL, "User:alice", Read),
        ),
        (
            allow(Topic, "secret", LITERAL, "User:alice", Read),
            deny(Topic, "sec", PREFIXED, "User:alice", Read),
        ),
        (
            allow(Topic, "secret", LITERAL, "User:alice", All),
            deny(Topic, "*", LITERAL, "User:*", Read),
        ),
        (
            allow(Topic, "secret", LITERAL, "User:alice", Read),
            deny(Topic, "secret", LITERAL, "User:alice", All),
        ),
        (
            allow(Topic, "secret", LITERAL, "User:*", Read),
            entry(
                Topic,
                "secret",
                LITERAL,
                "User:alice",
                "10.0.0.1",
                Read,
                PERMISSION_DENY,
            ),
        ),
    ] {
        let acls = image(&[allow_acl.clone(), deny_acl.clone()]);
        let c = Check {
            auth: &auth,
            acls: &acls,
        };
        assert!(
            !c.alice(Read, Topic, "secret"),
            "{allow_acl:?} {deny_acl:?}"
        );
        let acls = image(std::slice::from_ref(&allow_acl));
        let c = Check {
            auth: &auth,
            acls: &acls,
        };
        assert!(c.alice(Read, Topic, "secret"), "{allow_acl:?}");
    }
}

#[test]
fn principal_and_host_must_match() {
    let acls = image(&[
        entry(
            Topic,
            "t",
            LITERAL,
            "User:alice",
            "10.0.0.1",
            Read,
            PERMISSION_ALLOW,
        ),
        allow(Topic, "u", LITERAL, "User:*", Read),
        entry(
            Topic,
            "v",
            LITERAL,
            "User:alice",
            "10.0.0.9",
            Read,
            PERMISSION_DENY,
        ),
        allow(Topic, "v", LITERAL, "User:alice", Read),
    ]);
    let auth = authorizer();
    let c = Check {
        auth: &auth,
        acls: &acls,
    };
    assert!(c.can("User:alice", "10.0.0.1", Read, Topic, "t"));
    assert!(!c.can("User:alice", "10.0.0.2", Read, Topic, "t"));
    assert!(!c.can("User:bob", "10.0.0.1", Read, Topic, "t"));
    assert!(
        c.can("User:bob", "10.0.0.1", Read, Topic, "u"),
        "User:* is every user"
    );
    assert!(c.can("User:alice", "10.0.0.1", Read, Topic, "v"));
    assert!(
        !c.can("User:alice", "10.0.0.9", Read, Topic, "v"),
        "deny from that host"
    );
    // The principal type counts: Group:alice is not User:alice, and User:* is no Group.
    assert!(!c.can("Group:alice", "10.0.0.1", Read, Topic, "t"));
}

#[test]
fn allow_implies_describe_and_describe_configs_but_deny_implies_nothing() {
    let auth = authorizer();
    for op in [Read, Write, Delete, Alter, Describe, All] {
        let acls = image(&[allow(Topic, "t", LITERAL, "User:alice", op)]);
        let c = Check {
            auth: &auth,
            acls: &acls,
        };
        assert!(c.alice(Describe, Topic, "t"), "{op:?} implies DESCRIBE");
    }
    for op in [
        Create,
        DescribeConfigs,
        AlterConfigs,
        ClusterAction,
        IdempotentWrite,
    ] {
        let acls = image(&[allow(Topic, "t", LITERAL, "User:alice", op)]);
        let c = Check {
            auth: &auth,
            acls: &acls,
        };
        assert!(
            !c.alice(Describe, Topic, "t"),
            "{op:?} does not imply DESCRIBE"
        );
    }
    let acls = image(&[allow(Topic, "t", LITERAL, "User:alice", AlterConfigs)]);
    let c = Check {
        auth: &auth,
        acls: &acls,
    };
    assert!(c.alice(DescribeConfigs, Topic, "t"));
    assert!(c.alice(AlterConfigs, Topic, "t"));
    assert!(!c.alice(Alter, Topic, "t"));
    // READ does not imply WRITE, nor DESCRIBE imply READ.
    let acls = image(&[allow(Topic, "t", LITERAL, "User:alice", Read)]);
    let c = Check {
        auth: &auth,
        acls: &acls,
    };
    assert!(!c.alice(Write, Topic, "t"));
    assert!(!c.alice(DescribeConfigs, Topic, "t"));
    let acls = image(&[allow(Topic, "t", LITERAL, "User:alice", Describe)]);
    let c = Check {
        auth: &auth,
        acls: &acls,
    };
    assert!(!c.alice(Read, Topic, "t"));
    // A DENY of READ leaves DESCRIBE (allowed by ALL) alone; a DENY of ALL denies it.
    let acls = image(&[
        allow(Topic, "t", LITERAL, "User:alice", All),
        deny(Topic, "t", LITERAL, "User:alice", Read),
    ]);
    let c = Check {
        auth: &auth,
        acls: &acls,
    };
    assert!(!c.alice(Read, Topic, "t"));
    assert!(c.alice(Describe, Topic, "t"));
    assert!(c.alice(Write, Topic, "t"));
    let acls = image(&[
        allow(Topic, "t", LITERAL, "User:alice", Read),
        deny(Topic, "t", LITERAL, "User:alice", All),
    ]);
    let c = Check {
        auth: &auth,
        acls: &acls,
    };
    assert!(!c.alice(Describe, Topic, "t"));
}

#[test]
fn super_users_may_do_anything_even_against_a_deny() {
    let acls = image(&[deny(Topic, "*", LITERAL, "User:*", All)]);
    let auth = Authorizer {
        super_users: HashSet::from(["User:admin".to_string()]),
        ..Authorizer::default()
    };
    let c = Check {
        auth: &auth,
        acls: &acls,
    };
    assert!(c.can("User:admin", "1.1.1.1", Write, Topic, "t"));
    assert!(c.can(
        "User:admin",
        "1.1.1.1",
        ClusterAction,
        Cluster,
        CLUSTER_NAME
    ));
    assert!(!c.alice(Write, Topic, "t"));
    assert!(c.any("User:admin", Write, Topic));
}

#[test]
fn super_users_and_the_default_come_from_the_config() {
    let cfg = |pairs: &[(&str, &str)]| {
        let o: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let c = runnel_config::BrokerConfig::load(None, &[], &o)
            .unwrap()
            .config;
        Authorizer::from_config(&c)
    };
    assert!(cfg(&[]).unwrap().is_none());
    let a = cfg(&[
        ("authorizer.class.name", STANDARD_AUTHORIZER),
        ("super.users", " User:admin ; User:CN=broker,O=x;"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(
        a.super_users,
        HashSet::from(["User:admin".to_string(), "User:CN=broker,O=x".to_string()])
    );
    assert!(!a.allow_if_no_acl);
    let a = cfg(&[
        ("authorizer.class.name", STANDARD_AUTHORIZER),
        ("allow.everyone.if.no.acl.found", "true"),
    ])
    .unwrap()
    .unwrap();
    assert!(a.allow_if_no_acl && a.super_users.is_empty());
    assert!(cfg(&[(
        "authorizer.class.name",
        "kafka.security.authorizer.AclAuthorizer"
    )])
    .is_err());
    assert!(cfg(&[
        ("authorizer.class.name", STANDARD_AUTHORIZER),
        ("super.users", "admin")
    ])
    .is_err());
}

#[test]
fn authorize_by_resource_type_as_kafka() {
    let auth = authorizer();
    let check = |acls: &[AclEntry]| {
        let img = image(acls);
        let c = Check {
            auth: &auth,
            acls: &img,
        };
        c.any("User:alice", Write, Topic)
    };
    assert!(!check(&[]));
    assert!(check(&[allow(Topic, "t", LITERAL, "User:alice", Write)]));
    assert!(check(&[allow(Topic, "p", PREFIXED, "User:*", All)]));
    assert!(!check(&[allow(Topic, "t", LITERAL, "User:bob", Write)]));
    assert!(!check(&[allow(Topic, "t", LITERAL, "User:alice", Read)]));
    // A deny on the same literal, or on a prefix, covers the allow.
    assert!(!check(&[
        allow(Topic, "t", LITERAL, "User:alice", Write),
        deny(Topic, "t", LITERAL, "User:alice", Write),
    ]));
    assert!(!check(&[
        allow(Topic, "payments", PREFIXED, "User:alice", Write),
        deny(Topic, "pay", PREFIXED, "User:alice", Write),
    ]));
    // One allow not covered is enough.
    assert!(check(&[
        allow(Topic, "payments", PREFIXED, "User:alice", Write),
        allow(Topic, "orders", LITERAL, "User:alice", Write),
        deny(Topic, "pay", PREFIXED, "User:alice", Write),
    ]));
    // A wildcard deny denies all; a wildcard allow allows.
    assert!(!check(&[
        allow(Topic, "*", LITERAL, "User:alice", Write),
        deny(Topic, "*", LITERAL, "User:alice", Write),
    ]));
    assert!(check(&[allow(Topic, "*", LITERAL, "User:alice", Write)]));
}

#[test]
fn authorized_operations_report_the_allowed_supported_operations() {
    let acls = image(&[
        allow(Topic, "t", LITERAL, "User:alice", Read),
        allow(Topic, "t", LITERAL, "User:alice", AlterConfigs),
    ]);
    let auth = authorizer();
    let p = KafkaPrincipal::user("alice");
    let who = Requester {
        principal: &p,
        host: "10.0.0.1",
    };
    let field = auth.authorized_operations(&acls, &who, Topic, "t");
    assert_eq!(
        field,
        operations_field([Read, Describe, DescribeConfigs, AlterConfigs].into_iter())
    );
    assert_eq!(field, (1 << 3) | (1 << 8) | (1 << 10) | (1 << 11));
    assert_eq!(auth.authorized_operations(&acls, &who, Topic, "u"), 0);
    assert_eq!(
        Cluster.supported_operations().len(),
        7,
        "CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, ALTER, DESCRIBE"
    );
}

#[test]
fn filters_select_as_kafka_binding_filters() {
    let acls = [
        allow(Topic, "orders", LITERAL, "User:alice", Read),
        allow(Topic, "*", LITERAL, "User:bob", Read),
        allow(Topic, "ord", PREFIXED, "User:carol", Write),
        deny(Group, "g", LITERAL, "User:alice", Read),
    ];
    let any = AclFilter {
        resource_type: ResourceType::Any as i8,
        resource_name: None,
        pattern_type: PATTERN_ANY,
        principal: None,
        host: None,
        operation: AclOperation::Any as i8,
        permission_type: 1,
    };
    let hits = |f: &AclFilter| acls.iter().filter(|a| f.matches(a)).count();
    assert_eq!(hits(&any), 4);
    let topic_orders = |pt| AclFilter {
        resource_type: Topic as i8,
        resource_name: Some("orders".into()),
        pattern_type: pt,
        ..any.clone()
    };
    assert_eq!(hits(&topic_orders(LITERAL)), 1);
    assert_eq!(hits(&topic_orders(PATTERN_ANY)), 1);
    assert_eq!(hits(&topic_orders(PREFIXED)), 0);
    assert_eq!(
        hits(&topic_orders(PATTERN_MATCH)),
        3,
        "literal, wildcard, prefix"
    );
    let f = AclFilter {
        principal: Some("User:alice".into()),
        ..any.clone()
    };
    assert_eq!(hits(&f), 2);
    let f = AclFilter {
        permission_type: PERMISSION_DENY,
        ..any.clone()
    };
    assert_eq!(hits(&f), 1);
    let f = AclFilter {
        operation: Write as i8,
        ..any.clone()
    };
    assert_eq!(hits(&f), 1);
    assert!(any.validate().is_ok());
    assert!(AclFilter {
        pattern_type: 0,
        ..any.clone()
    }
    .validate()
    .is_err());
    assert!(AclFilter {
        operation: 0,
        ..any.clone()
    }
    .validate()
    .is_err());
}
