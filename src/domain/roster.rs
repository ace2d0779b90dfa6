//! People, roles and badges: who may do what at the board.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::BadgeHash;

/// A person's role in the cascade.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Level 1: takes part, owns actions.
    Member,
    /// Level 2: facilitates the huddle and closes it.
    TeamLeader,
    /// Level 3: coaches team leaders.
    Supervisor,
    /// Level 4: coaches supervisors.
    Manager,
}

impl Role {
    /// The stored and wire name.
    pub fn key(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::TeamLeader => "team_leader",
            Role::Supervisor => "supervisor",
            Role::Manager => "manager",
        }
    }

    /// Parses the stored name.
    pub fn from_key(key: &str) -> Option<Role> {
        [
            Role::Member,
            Role::TeamLeader,
            Role::Supervisor,
            Role::Manager,
        ]
        .into_iter()
        .find(|r| r.key() == key)
    }

    /// Whether this role starts and closes the huddle (the team leader).
    pub fn may_run_huddle(self) -> bool {
        self == Role::TeamLeader
    }

    /// Whether this role may enrol an unknown badge to a roster person:
    /// a team leader, or anyone above (supervisor, manager).
    pub fn may_enrol(self) -> bool {
        self >= Role::TeamLeader
    }
}

/// Someone on the board's roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Person {
    /// Stable id; events name people by it.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Role in the cascade.
    pub role: Role,
}

impl Person {
    /// Up to two initials for a tile.
    pub fn initials(&self) -> String {
        self.name
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .take(2)
            .flat_map(char::to_uppercase)
            .collect()
    }
}

/// The board's roster: people in display order and their badges by hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    people: Vec<Person>,
    badges: HashMap<BadgeHash, String>,
}

impl Roster {
    /// Builds a roster; badges naming nobody on it are ignored.
    pub fn new(people: Vec<Person>, badges: impl IntoIterator<Item = (BadgeHash, String)>) -> Self {
        let mut roster = Roster {
            people,
            badges: HashMap::new(),
        };
        for (hash, person) in badges {
            if roster.person(&person).is_some() {
                roster.badges.insert(hash, person);
            }
        }
        roster
    }

    /// People in display order.
    pub fn people(&self) -> &[Person] {
        &self.people
    }

    /// The person with this id.
    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.id == id)
    }

    /// The person a badge belongs to.
    pub fn by_badge(&self, hash: &BadgeHash) -> Option<&Person> {
        self.badges.get(hash).and_then(|id| self.person(id))
    }

    /// Adds or moves a badge to a person (enrolment).
    pub fn enrol(&mut self, hash: BadgeHash, person_id: &str) {
        self.badges.insert(hash, person_id.to_owned());
    }

    /// Number of people expected at the huddle (everyone on the roster
    /// whose role is member or team leader; supervisors and managers visit).
    pub fn expected(&self) -> impl Iterator<Item = &Person> {
        self.people.iter().filter(|p| p.role <= Role::TeamLeader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: &str) -> BadgeHash {
        crate::domain::hash_badge(b"0123456789abcdef", n)
    }

    #[test]
    fn only_team_leaders_run_the_huddle() {
        assert!(Role::TeamLeader.may_run_huddle());
        for r in [Role::Member, Role::Supervisor, Role::Manager] {
            assert!(!r.may_run_huddle(), "{r:?}");
        }
    }

    #[test]
    fn team_leaders_and_above_enrol() {
        assert!(!Role::Member.may_enrol());
        for r in [Role::TeamLeader, Role::Supervisor, Role::Manager] {
            assert!(r.may_enrol(), "{r:?}");
        }
    }

    #[test]
    fn badges_find_people_and_enrolment_moves_them() {
        let ana = Person {
            id: "p1".into(),
            name: "Ana Silva".into(),
            role: Role::Member,
        };
        let ben = Person {
            id: "p2".into(),
            name: "Ben Okafor".into(),
            role: Role::TeamLeader,
        };
        let mut roster = Roster::new(
            vec![ana, ben],
            [(hash("1"), "p1".into()), (hash("9"), "nobody".into())],
        );
        assert_eq!(roster.by_badge(&hash("1")).unwrap().id, "p1");
        assert!(roster.by_badge(&hash("9")).is_none());
        roster.enrol(hash("2"), "p2");
        assert_eq!(roster.by_badge(&hash("2")).unwrap().name, "Ben Okafor");
        assert_eq!(roster.person("p1").unwrap().initials(), "AS");
    }
}
