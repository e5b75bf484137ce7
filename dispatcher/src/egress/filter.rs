//! Trigger filters compiled once per contract: the legacy `filter.attributes` and the
//! Subscriptions API dialects (exact, prefix, suffix, all, any, not, cesql).

use std::collections::BTreeMap;

use cloudevents::Event;
use cloudevents::event::AttributeValue;
use ferry_api::cesql::{self, AttributeSource, Expression, Value};
use ferry_api::eventing::SubscriptionsApiFilter;

use crate::binding::{attribute, attribute_text};

/// One compiled filter expression.
#[derive(Debug)]
enum Compiled {
    All(Vec<Compiled>),
    Any(Vec<Compiled>),
    Not(Box<Compiled>),
    Exact(Vec<(String, String)>),
    Prefix(Vec<(String, String)>),
    Suffix(Vec<(String, String)>),
    Sql(Box<Expression>),
    /// An expression with no dialect set: matches everything.
    Empty,
}

/// Everything an egress checks before delivering an event.
#[derive(Debug, Default)]
pub struct EventFilter {
    attributes: Vec<(String, String)>,
    filters: Vec<Compiled>,
}

impl EventFilter {
    /// Compiles the legacy attribute filter and the Subscriptions API filters.
    ///
    /// # Errors
    /// A CESQL expression that does not parse (contracts are validated first, so this names a
    /// contract bug).
    pub fn compile(
        attributes: &BTreeMap<String, String>,
        filters: &[SubscriptionsApiFilter],
    ) -> Result<Self, cesql::ParseError> {
        Ok(EventFilter {
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            filters: filters.iter().map(compile).collect::<Result<_, _>>()?,
        })
    }

    /// `true` when the event passes every filter.
    pub fn matches(&self, event: &Event) -> bool {
        let attrs = Attributes(event);
        self.attributes.iter().all(|(name, want)| {
            want.is_empty() || attrs.text(name).as_deref() == Some(want.as_str())
        }) && self.filters.iter().all(|f| eval(f, &attrs))
    }
}

fn compile(filter: &SubscriptionsApiFilter) -> Result<Compiled, cesql::ParseError> {
    let pairs =
        |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(if !filter.all.is_empty() {
        Compiled::All(filter.all.iter().map(compile).collect::<Result<_, _>>()?)
    } else if !filter.any.is_empty() {
        Compiled::Any(filter.any.iter().map(compile).collect::<Result<_, _>>()?)
    } else if let Some(not) = &filter.not {
        Compiled::Not(Box::new(compile(not)?))
    } else if !filter.exact.is_empty() {
        Compiled::Exact(pairs(&filter.exact))
    } else if !filter.prefix.is_empty() {
        Compiled::Prefix(pairs(&filter.prefix))
    } else if !filter.suffix.is_empty() {
        Compiled::Suffix(pairs(&filter.suffix))
    } else if let Some(sql) = &filter.cesql {
        Compiled::Sql(Box::new(cesql::parse(sql)?))
    } else {
        Compiled::Empty
    })
}

fn eval(filter: &Compiled, attrs: &Attributes<'_>) -> bool {
    let each = |pairs: &[(String, String)], test: fn(&str, &str) -> bool| {
        pairs
            .iter()
            .all(|(name, want)| attrs.text(name).is_some_and(|have| test(&have, want)))
    };
    match filter {
        Compiled::All(list) => list.iter().all(|f| eval(f, attrs)),
        Compiled::Any(list) => list.iter().any(|f| eval(f, attrs)),
        Compiled::Not(inner) => !eval(inner, attrs),
        Compiled::Exact(pairs) => each(pairs, |have, want| have == want),
        Compiled::Prefix(pairs) => each(pairs, |have, want| have.starts_with(want)),
        Compiled::Suffix(pairs) => each(pairs, |have, want| have.ends_with(want)),
        Compiled::Sql(expr) => expr.matches(attrs),
        Compiled::Empty => true,
    }
}

/// An event seen through its attribute names.
struct Attributes<'a>(&'a Event);

impl Attributes<'_> {
    fn text(&self, name: &str) -> Option<String> {
        attribute(self.0, name)
    }
}

impl AttributeSource for Attributes<'_> {
    fn attribute(&self, name: &str) -> Option<Value> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| match v {
                AttributeValue::Boolean(b) => Value::Boolean(*b),
                AttributeValue::Integer(i) => {
                    i32::try_from(*i).map_or_else(|_| Value::String(i.to_string()), Value::Integer)
                }
                other => Value::String(attribute_text(&other)),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::{EventBuilder, EventBuilderV10};

    fn event() -> Event {
        EventBuilderV10::new()
            .id("42")
            .source("/shop/orders")
            .ty("com.shop.order.created")
            .subject("cart-7")
            .extension("region", "eu-west")
            .extension("priority", 5i64)
            .build()
            .unwrap()
    }

    fn filter(json: &str) -> SubscriptionsApiFilter {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn each_dialect() {
        let cases: &[(&str, bool)] = &[
            (r#"{"exact": {"type": "com.shop.order.created"}}"#, true),
            (r#"{"exact": {"type": "com.shop.order"}}"#, false),
            (r#"{"exact": {"missing": ""}}"#, false),
            (r#"{"prefix": {"type": "com.shop."}}"#, true),
            (r#"{"prefix": {"source": "/other"}}"#, false),
            (r#"{"suffix": {"type": ".created"}}"#, true),
            (r#"{"suffix": {"region": "east"}}"#, false),
            (
                r#"{"all": [{"prefix": {"type": "com."}}, {"exact": {"region": "eu-west"}}]}"#,
                true,
            ),
            (
                r#"{"all": [{"prefix": {"type": "com."}}, {"exact": {"region": "us"}}]}"#,
                false,
            ),
            (
                r#"{"any": [{"exact": {"region": "us"}}, {"suffix": {"subject": "-7"}}]}"#,
                true,
            ),
            (
                r#"{"any": [{"exact": {"region": "us"}}, {"exact": {"id": "1"}}]}"#,
                false,
            ),
            (r#"{"not": {"exact": {"region": "us"}}}"#, true),
            (r#"{"not": {"prefix": {"type": "com."}}}"#, false),
            (
                r#"{"cesql": "type LIKE 'com.shop.%' AND priority > 3"}"#,
                true,
            ),
            (r#"{"cesql": "priority > 7"}"#, false),
            (r#"{"cesql": "EXISTS region AND NOT EXISTS tenant"}"#, true),
            (r#"{"cesql": "tenant = 'x'"}"#, false),
        ];
        for (json, want) in cases {
            let f = EventFilter::compile(&BTreeMap::new(), &[filter(json)]).unwrap();
            assert_eq!(f.matches(&event()), *want, "{json}");
        }
    }

    #[test]
    fn legacy_attributes_and_combination() {
        let attrs = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(
            EventFilter::compile(
                &attrs(&[("type", "com.shop.order.created"), ("source", "")]),
                &[]
            )
            .unwrap()
            .matches(&event())
        );
        assert!(
            EventFilter::compile(&attrs(&[("tenant", "")]), &[])
                .unwrap()
                .matches(&event()),
            "empty value matches any"
        );
        assert!(
            !EventFilter::compile(&attrs(&[("type", "other")]), &[])
                .unwrap()
                .matches(&event())
        );
        let both = [
            filter(r#"{"prefix": {"type": "com."}}"#),
            filter(r#"{"exact": {"region": "us"}}"#),
        ];
        assert!(
            !EventFilter::compile(&BTreeMap::new(), &both)
                .unwrap()
                .matches(&event()),
            "every filter must match"
        );
        assert!(EventFilter::default().matches(&event()));
    }
}
