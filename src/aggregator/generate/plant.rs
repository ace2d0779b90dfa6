//! The generated site's people and boards: areas of up to ten boards,
//! each board with a team leader and six to ten members, a supervisor
//! for every five boards (on each of their boards' rosters), a manager
//! for each area. Pure: the same seed gives the same plant, and its
//! roster file ([`Plant::roster_csv`]) is the one the aggregator reads.

use crate::domain::{hash_badge, BadgeHash, Role};

use super::rng::Rng;

/// Boards in one area.
pub const BOARDS_PER_AREA: usize = 10;
/// Boards one supervisor coaches.
pub const BOARDS_PER_SUPERVISOR: usize = 5;

const AREAS: [&str; 12] = [
    "assembly",
    "paint",
    "press",
    "weld",
    "machining",
    "molding",
    "packing",
    "logistics",
    "quality",
    "maintenance",
    "kitting",
    "test",
];

const FIRST: [&str; 24] = [
    "Eva", "Ana", "Ben", "Chloé", "Dmitri", "Fatima", "Sam", "Mira", "Jonas", "Leila", "Tomás",
    "Aiko", "Kwame", "Ingrid", "Rahul", "Zofia", "Omar", "Nadia", "Pieter", "Lucía", "Emre",
    "Greta", "Yusuf", "Hana",
];

const LAST: [&str; 24] = [
    "Novak", "Silva", "Okafor", "Martin", "Ivanov", "Haddad", "Reyes", "Kowalski", "Berg", "Rossi",
    "Nakamura", "Mensah", "Larsen", "Sharma", "Nowak", "Khan", "Popescu", "Janssen", "García",
    "Yilmaz", "Schulz", "Demir", "Sato", "Costa",
];

/// Someone on the generated rosters.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// Person id (site-wide unique).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Their coach's index in [`Plant::people`].
    pub coach: Option<usize>,
    /// Their badge's keyed hash.
    pub badge: BadgeHash,
    /// How often this person does what the cascade asks of them (shows
    /// up, observes their learners), 0 to 1.
    pub diligence: f64,
    /// How well they do it now (a learner's mean rubric score, 1 to 4);
    /// it grows a little with every observation.
    pub skill: f64,
}

/// One generated board.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    /// Board id (topic level).
    pub id: String,
    /// Area (topic level).
    pub area: String,
    /// Index of its team leader in [`Plant::people`].
    pub team_leader: usize,
    /// Its members' indexes.
    pub members: Vec<usize>,
    /// Its supervisor's index.
    pub supervisor: usize,
    /// Its area manager's index.
    pub manager: usize,
}

/// The whole generated site.
#[derive(Debug, Clone, PartialEq)]
pub struct Plant {
    /// Everybody, each once.
    pub people: Vec<Person>,
    /// The boards, in id order.
    pub boards: Vec<Board>,
}

impl Plant {
    /// The plant of `boards` boards for `seed`; badge hashes under
    /// `site_key`, as the boards would compute them.
    pub fn new(boards: usize, seed: u64, site_key: &str) -> Plant {
        let mut rng = Rng::fork(seed, u64::MAX);
        let mut people: Vec<Person> = Vec::new();
        let mut person = |rng: &mut Rng, id: String, role: Role, coach: Option<usize>| {
            let name = format!("{} {}", rng.pick(&FIRST), rng.pick(&LAST));
            // One in eight supervisors and managers lets coaching slide.
            let diligence = if matches!(role, Role::Supervisor | Role::Manager) && rng.chance(0.125)
            {
                0.15 + 0.2 * rng.unit()
            } else {
                0.75 + 0.25 * rng.unit()
            };
            let skill = 1.8 + 1.2 * rng.unit();
            let badge = hash_badge(
                site_key.as_bytes(),
                &(10_000_000 + people.len()).to_string(),
            );
            people.push(Person {
                id,
                name,
                role,
                coach,
                badge,
                diligence,
                skill,
            });
            people.len() - 1
        };
        let mut out = Vec::with_capacity(boards);
        let (mut manager, mut supervisor) = (0, 0);
        for i in 0..boards {
            let area_no = i / BOARDS_PER_AREA;
            let area = match area_no / AREAS.len() {
                0 => AREAS[area_no].to_owned(),
                n => format!("{}-{}", AREAS[area_no % AREAS.len()], n + 1),
            };
            if i % BOARDS_PER_AREA == 0 {
                manager = person(&mut rng, format!("m{area_no:03}"), Role::Manager, None);
            }
            if (i % BOARDS_PER_AREA).is_multiple_of(BOARDS_PER_SUPERVISOR) {
                let id = format!("s{:03}", i / BOARDS_PER_SUPERVISOR);
                supervisor = person(&mut rng, id, Role::Supervisor, Some(manager));
            }
            let id = format!("{area}-{:02}", i % BOARDS_PER_AREA + 1);
            let team_leader = person(
                &mut rng,
                format!("{id}-tl"),
                Role::TeamLeader,
                Some(supervisor),
            );
            let members = (1..=rng.range(6, 10))
                .map(|m| {
                    person(
                        &mut rng,
                        format!("{id}-{m:02}"),
                        Role::Member,
                        Some(team_leader),
                    )
                })
                .collect();
            out.push(Board {
                id,
                area,
                team_leader,
                members,
                supervisor,
                manager,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Plant {
            people,
            boards: out,
        }
    }

    /// The site roster file (the format of `roster.file`): each board's
    /// team leader, members, supervisor and manager.
    pub fn roster_csv(&self) -> String {
        let mut out = String::from(
            "# Generated by `huddle-aggregator generate`: a made-up plant.\n\
             person_id,name,role,board,area,coach,badge_hashes\n",
        );
        for b in &self.boards {
            let rows = std::iter::once(b.team_leader)
                .chain(b.members.iter().copied())
                .chain([b.supervisor, b.manager]);
            for p in rows.map(|i| &self.people[i]) {
                let coach = p.coach.map_or("", |c| self.people[c].id.as_str());
                out.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    p.id,
                    p.name,
                    p.role.key(),
                    b.id,
                    b.area,
                    coach,
                    p.badge.as_str()
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_supervisors_and_a_roster_the_aggregator_reads() {
        let plant = Plant::new(23, 5, "key");
        assert_eq!(plant, Plant::new(23, 5, "key"));
        assert_eq!(plant.boards.len(), 23);
        let areas: std::collections::BTreeSet<&str> =
            plant.boards.iter().map(|b| b.area.as_str()).collect();
        assert_eq!(areas.len(), 3);
        let supervisors = plant
            .people
            .iter()
            .filter(|p| p.role == Role::Supervisor)
            .count();
        assert_eq!(supervisors, 5);
        let text = plant.roster_csv();
        let rosters = crate::aggregator::roster::parse(
            &text,
            std::path::Path::new("gen.csv"),
            chrono::Utc::now(),
        )
        .unwrap();
        assert_eq!(rosters.len(), 23);
        let b = &rosters[0].message;
        assert!(b.people.iter().any(|p| p.role == Role::TeamLeader));
        assert!(b.people.iter().all(|p| !p.badge_hashes.is_empty()));
    }
}
