//! The simulator's list endpoints: filters and pages as the reference pages
//! give them, plus the `marker` paging OpenStack SDKs use (the last id of the
//! previous page; items come in id order here).

use std::time::Duration;

use axum::http::Uri;
use serde_json::{Value, json};

use super::Answer;
use super::evs::EvsGroup;
use super::sdrs::{Group, Sdrs};
use crate::cloud::vocabulary::SdrsStatus;

/// How long a protection group may go without a DR drill before
/// `query_type=period_no_dr_drill` lists it (the reference's default, three
/// months).
const DRILL_PERIOD: Duration = Duration::from_secs(90 * 24 * 3600);

/// One query parameter, percent-decoded (`+` as space).
pub(super) fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// `limit`, `offset` and `marker` of a list request.
struct Page {
    limit: usize,
    offset: usize,
    marker: Option<String>,
}

impl Page {
    /// `limit` at least `min`, at most and by default `max`; `offset` not
    /// negative; `None` when either is out of range or not a number.
    fn of(uri: &Uri, min: usize, max: usize) -> Option<Page> {
        let limit = match query_param(uri, "limit") {
            Some(l) => l.parse().ok().filter(|l| (min..=max).contains(l))?,
            None => max,
        };
        let offset = match query_param(uri, "offset") {
            Some(o) => o.parse().ok()?,
            None => 0,
        };
        let marker = query_param(uri, "marker").filter(|m| !m.is_empty());
        Some(Page {
            limit,
            offset,
            marker,
        })
    }

    /// True for an id after the marker.
    fn after_marker(&self, id: &str) -> bool {
        self.marker.as_deref().is_none_or(|m| id > m)
    }

    /// The page of `items` (already filtered, in id order).
    fn take(&self, items: Vec<Value>) -> Vec<Value> {
        items
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect()
    }
}

/// `GET /v2/{project}/os-vendor-replication-consistency-groups`: `limit` 1
/// to 1000 (default 1000), `offset`, `marker`, `status`, `priority_station`,
/// `name` (exact).
pub(super) fn evs_groups<'a>(groups: impl Iterator<Item = &'a EvsGroup>, uri: &Uri) -> Answer {
    let Some(page) = Page::of(uri, 1, 1000) else {
        return Answer::json(
            400,
            json!({ "badRequest": { "message": "Invalid input received: limit must be 1 to 1000 and offset not negative", "code": 400 } }),
        );
    };
    let param = |name| query_param(uri, name);
    let (status, station, name) = (param("status"), param("priority_station"), param("name"));
    let groups: Vec<Value> = groups
        .filter(|g| page.after_marker(&g.id))
        .filter(|g| status.as_deref().is_none_or(|st| g.status.as_str() == st))
        .filter(|g| station.as_deref().is_none_or(|st| g.priority_station == st))
        .filter(|g| name.as_deref().is_none_or(|n| g.name == n))
        .map(EvsGroup::to_json)
        .collect();
    Answer::json(
        200,
        json!({ "replication_consistency_groups": page.take(groups) }),
    )
}

/// What `query_type` asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum QueryType {
    /// `general` or empty: no filter.
    General,
    /// Groups in an error status.
    StatusAbnormal,
    /// Groups whose protection is disabled.
    StopProtected,
    /// Groups without a DR drill in the last three months.
    PeriodNoDrill,
}

impl QueryType {
    fn parse(s: &str) -> Option<QueryType> {
        match s {
            "" | "general" => Some(QueryType::General),
            "status_abnormal" => Some(QueryType::StatusAbnormal),
            "stop_protected" => Some(QueryType::StopProtected),
            "period_no_dr_drill" => Some(QueryType::PeriodNoDrill),
            _ => None,
        }
    }

    fn admits(self, g: &Group, now: Duration) -> bool {
        match self {
            QueryType::General => true,
            QueryType::StatusAbnormal => g.status.as_str().starts_with("error"),
            QueryType::StopProtected => g.status == SdrsStatus::Available,
            QueryType::PeriodNoDrill => g
                .last_drill
                .is_none_or(|at| now.saturating_sub(at) > DRILL_PERIOD),
        }
    }
}

fn sdrs_bad_query(message: &str) -> Answer {
    Answer::json(
        400,
        json!({ "error": { "message": message, "code": "SDRS.0221" } }),
    )
}

/// `GET /v1/{project}/server-groups`: `limit` 0 to 1000 (default 1000),
/// `offset`, `marker`, `status`, `name` (contained), `query_type`,
/// `availability_zone` (the current production AZ); `count` is every match,
/// not the page.
pub(super) fn sdrs_groups(s: &Sdrs, uri: &Uri, now: Duration) -> Answer {
    let Some(page) = Page::of(uri, 0, 1000) else {
        return sdrs_bad_query("limit must be 0 to 1000 and offset not negative");
    };
    let param = |name| query_param(uri, name);
    let Some(query_type) = QueryType::parse(param("query_type").as_deref().unwrap_or("")) else {
        return sdrs_bad_query(
            "query_type must be general, status_abnormal, stop_protected or period_no_dr_drill",
        );
    };
    let (status, name, zone) = (param("status"), param("name"), param("availability_zone"));
    let matching: Vec<Value> = s
        .groups
        .values()
        .filter(|g| page.after_marker(&g.id))
        .filter(|g| status.as_deref().is_none_or(|st| g.status.as_str() == st))
        .filter(|g| name.as_deref().is_none_or(|n| g.name.contains(n)))
        .filter(|g| zone.as_deref().is_none_or(|z| g.production_az() == z))
        .filter(|g| query_type.admits(g, now))
        .map(|g| s.group_json(g))
        .collect();
    let count = matching.len();
    json_list(count, "server_groups", page.take(matching))
}

/// `GET /v1/{project}/disaster-recovery-drills`: `limit` 0 to 1000 (default
/// 1000), `offset`, `marker`, `server_group_id`, `name` (contained),
/// `status`, `drill_vpc_id`; `count` is every match.
pub(super) fn drills(s: &Sdrs, uri: &Uri) -> Answer {
    let Some(page) = Page::of(uri, 0, 1000) else {
        return sdrs_bad_query("limit must be 0 to 1000 and offset not negative");
    };
    let param = |name| query_param(uri, name);
    let (group, name) = (param("server_group_id"), param("name"));
    let (status, vpc) = (param("status"), param("drill_vpc_id"));
    let matching: Vec<Value> = s
        .drills
        .values()
        .filter(|d| page.after_marker(&d.id))
        .filter(|d| group.as_deref().is_none_or(|g| d.server_group_id == g))
        .filter(|d| name.as_deref().is_none_or(|n| d.name.contains(n)))
        .filter(|d| status.as_deref().is_none_or(|st| d.status == st))
        .filter(|d| vpc.as_deref().is_none_or(|v| d.drill_vpc_id == v))
        .map(|d| s.drill_json(d))
        .collect();
    let count = matching.len();
    json_list(count, "disaster_recovery_drills", page.take(matching))
}

fn json_list(count: usize, key: &str, items: Vec<Value>) -> Answer {
    let mut body = serde_json::Map::new();
    body.insert("count".into(), json!(count));
    body.insert(key.into(), Value::Array(items));
    Answer::json(200, Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn uri(query: &str) -> Uri {
        format!("/v1/p/server-groups?{query}").parse().unwrap()
    }

    fn ids(answer: &Answer, key: &str) -> Vec<String> {
        answer.body[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn groups() -> Sdrs {
        let mut s = Sdrs::new(Utc::now(), Duration::from_secs(1));
        for id in ["pg1", "pg2", "pg3", "pg4", "pg5"] {
            s.add_group(id, Duration::ZERO);
        }
        s.groups.get_mut("pg2").unwrap().status = SdrsStatus::Available;
        s.groups.get_mut("pg3").unwrap().status = SdrsStatus::ErrorFailingOver;
        s.groups.get_mut("pg4").unwrap().status = SdrsStatus::Error;
        s
    }

    #[test]
    fn query_type_lists_abnormal_unprotected_or_undrilled_groups() {
        let mut s = groups();
        let now = 10 * DAY;
        let by = |s: &Sdrs, q: &str, now| ids(&sdrs_groups(s, &uri(q), now), "server_groups");
        assert_eq!(by(&s, "query_type=status_abnormal", now), ["pg3", "pg4"]);
        assert_eq!(by(&s, "query_type=stop_protected", now), ["pg2"]);
        assert_eq!(by(&s, "query_type=general", now).len(), 5);
        assert_eq!(by(&s, "query_type=", now).len(), 5);
        s.groups.get_mut("pg1").unwrap().last_drill = Some(5 * DAY);
        s.groups.get_mut("pg5").unwrap().last_drill = Some(Duration::ZERO);
        assert_eq!(
            by(&s, "query_type=period_no_dr_drill", now),
            ["pg2", "pg3", "pg4"],
            "drilled in the last three months"
        );
        assert_eq!(
            by(&s, "query_type=period_no_dr_drill", 94 * DAY),
            ["pg2", "pg3", "pg4", "pg5"],
            "pg5's drill is more than 90 days old"
        );
        let bad = sdrs_groups(&s, &uri("query_type=broken"), now);
        assert_eq!(bad.status, Some(400));
        assert_eq!(bad.body["error"]["code"], "SDRS.0221");
    }

    #[test]
    fn group_pages_follow_limit_offset_and_marker_and_count_every_match() {
        let s = groups();
        let page = sdrs_groups(&s, &uri("limit=2&offset=1"), Duration::ZERO);
        assert_eq!(ids(&page, "server_groups"), ["pg2", "pg3"]);
        assert_eq!(page.body["count"], 5);
        let page = sdrs_groups(&s, &uri("limit=2&marker=pg3"), Duration::ZERO);
        assert_eq!(ids(&page, "server_groups"), ["pg4", "pg5"]);
        let page = sdrs_groups(&s, &uri("limit=2&marker=pg5"), Duration::ZERO);
        assert!(ids(&page, "server_groups").is_empty(), "past the last id");
        let page = sdrs_groups(&s, &uri("status=protected&name=pg"), Duration::ZERO);
        assert_eq!(ids(&page, "server_groups"), ["pg1", "pg5"]);
        for bad in ["limit=1001", "limit=x", "offset=-1"] {
            assert_eq!(sdrs_groups(&s, &uri(bad), Duration::ZERO).status, Some(400));
        }
    }

    #[test]
    fn drills_filter_by_group_status_vpc_and_page() {
        let mut s = groups();
        for (i, (group, status, vpc)) in [
            ("pg1", "available", "vpc-a"),
            ("pg1", "error", "vpc-b"),
            ("pg5", "available", "vpc-a"),
        ]
        .into_iter()
        .enumerate()
        {
            let id = format!("d{i}");
            s.drills.insert(
                id.clone(),
                super::super::sdrs::Drill {
                    id,
                    name: format!("drill-{i}"),
                    status,
                    server_group_id: group.into(),
                    drill_vpc_id: vpc.into(),
                    created: Duration::ZERO,
                    updated: Duration::ZERO,
                },
            );
        }
        let list = |q: &str| ids(&drills(&s, &uri(q)), "disaster_recovery_drills");
        assert_eq!(list("server_group_id=pg1"), ["d0", "d1"]);
        assert_eq!(list("status=available"), ["d0", "d2"]);
        assert_eq!(list("drill_vpc_id=vpc-b"), ["d1"]);
        assert_eq!(list("name=drill-2"), ["d2"]);
        assert_eq!(list("limit=1&offset=1"), ["d1"]);
        assert_eq!(list("limit=5&marker=d0"), ["d1", "d2"]);
        assert_eq!(drills(&s, &uri("limit=1")).body["count"], 3);
    }

    #[test]
    fn evs_groups_filter_by_priority_station_and_page_by_marker() {
        let mut evs = std::collections::BTreeMap::new();
        for (id, primary) in [("g1", "az1"), ("g2", "az2"), ("g3", "az1")] {
            evs.insert(
                id.to_string(),
                EvsGroup::new(id, primary, "az9", Duration::from_secs(1)),
            );
        }
        let list = |q: &str| {
            let uri: Uri = format!("/v2/p/groups?{q}").parse().unwrap();
            ids(
                &evs_groups(evs.values(), &uri),
                "replication_consistency_groups",
            )
        };
        assert_eq!(list("priority_station=az1"), ["g1", "g3"]);
        assert_eq!(list("limit=1&marker=g1"), ["g2"]);
        assert_eq!(list("limit=2&offset=1"), ["g2", "g3"]);
    }
}
