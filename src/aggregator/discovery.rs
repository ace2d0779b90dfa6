//! Home Assistant MQTT discovery (optional, `home_assistant.discovery` in
//! the aggregator's config): each board appears in Home Assistant as one
//! device with sensors for its huddle state, attendance and open
//! escalations, and a connectivity sensor, with no set-up there.
//!
//! Pure: a board's topics in, the retained discovery messages out
//! (`{prefix}/{component}/{object_id}/config`, Home Assistant's default
//! prefix being `homeassistant`). Every sensor reads the board's retained
//! `.../status` ([`crate::wire::payload::BoardLive`]) through a value template,
//! so nothing is published twice. The broker's ACL must let the
//! aggregator write `{prefix}/#` (the shipped template does).

use serde_json::{json, Value};

use crate::wire::topic::BoardTopics;

/// One discovery message: topic and JSON payload (publish retained).
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// `{prefix}/{component}/{object_id}/config`.
    pub topic: String,
    /// The entity's configuration.
    pub payload: Value,
}

/// The discovery messages of one board.
pub fn board(prefix: &str, site: &str, area: &str, board: &str) -> Vec<Discovery> {
    let status = BoardTopics::new(site, area, board).status();
    let device_id = format!("huddle_{site}_{board}");
    let device = json!({
        "identifiers": [device_id],
        "name": format!("Huddle board {board}"),
        "manufacturer": "huddle-board",
        "model": "huddle-kiosk",
        "suggested_area": area,
    });
    let entity = |component: &str, key: &str, name: &str, extra: Value| {
        let object_id = format!("{device_id}_{key}");
        let mut payload = json!({
            "name": name,
            "unique_id": object_id,
            "object_id": object_id,
            "state_topic": status,
            "device": device,
        });
        if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
            p.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Discovery {
            topic: format!("{prefix}/{component}/{object_id}/config"),
            payload,
        }
    };
    vec![
        entity(
            "sensor",
            "state",
            "Huddle",
            json!({
                "value_template": "{{ value_json.state }}",
                "device_class": "enum",
                "options": ["not_started", "in_progress", "closed", "missed"],
                "icon": "mdi:account-group",
            }),
        ),
        entity(
            "sensor",
            "attendance",
            "Attendance",
            json!({
                "value_template": "{{ value_json.huddle.present if value_json.huddle else 0 }}",
                "json_attributes_topic": status,
                "json_attributes_template":
                    "{{ {'expected': value_json.huddle.expected if value_json.huddle else 0} | tojson }}",
                "unit_of_measurement": "people",
                "state_class": "measurement",
                "icon": "mdi:account-check",
            }),
        ),
        entity(
            "sensor",
            "escalations",
            "Open escalations",
            json!({
                "value_template": "{{ value_json.escalations | length }}",
                "state_class": "measurement",
                "icon": "mdi:alert-circle-outline",
            }),
        ),
        entity(
            "binary_sensor",
            "online",
            "Online",
            json!({
                "value_template": "{{ 'ON' if value_json.online else 'OFF' }}",
                "device_class": "connectivity",
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_is_one_device_with_four_entities_reading_its_status() {
        let d = board("homeassistant", "plant1", "assembly", "line-3");
        assert_eq!(d.len(), 4);
        assert_eq!(
            d[0].topic,
            "homeassistant/sensor/huddle_plant1_line-3_state/config"
        );
        assert_eq!(
            d[3].topic,
            "homeassistant/binary_sensor/huddle_plant1_line-3_online/config"
        );
        for e in &d {
            assert_eq!(
                e.payload["state_topic"],
                "huddle/v1/plant1/assembly/line-3/status"
            );
            assert_eq!(
                e.payload["device"]["identifiers"][0],
                "huddle_plant1_line-3"
            );
            assert!(e.payload["value_template"].is_string());
        }
        let ids: std::collections::BTreeSet<String> = d
            .iter()
            .map(|e| e.payload["unique_id"].to_string())
            .collect();
        assert_eq!(ids.len(), 4);
    }
}
