//! Deploying a new version: which waiting conversations resume, and moving one over.

use crate::load;
use botc_runtime::migrate::{Verdict, diff, migrate};
use botc_runtime::sim::Conversation;
use botc_runtime::{Context, Value};
use std::collections::BTreeMap;

const V1: &str = r#"
flow: shop
start: ask_name
vars:
  name: text
nodes:
  ask_name:
    ask: Name?
    into: name
    next: ask_size
  ask_size:
    ask: Size?
    into: size_answer
    next: pause
  pause:
    wait: 1h
    next: bye
  bye:
    say: "Bye {{ name }}, {{ size_answer }}"
    next: done
  done:
    end:
"#;

fn v1() -> String {
    V1.replace("vars:\n  name: text\n", "vars:\n  name: text\n  size_answer: text\n")
}

/// v2: `ask_size` renamed `pick_size`, `pause` became an ask, a new variable with a default,
/// and `ask_name` kept as it was.
const V2: &str = r#"
flow: shop
start: ask_name
vars:
  name: text
  size_answer: text
  greeting: { type: text, default: "Cheers" }
nodes:
  ask_name:
    ask: Your name?
    into: name
    next: pick_size
  pick_size:
    ask: Which size?
    into: size_answer
    next: pause
  pause:
    ask: Anything else?
    into: size_answer
    next: bye
  bye:
    say: "{{ greeting }} {{ name }}, {{ size_answer }}"
    next: done
  done:
    end:
"#;

#[test]
fn diff_says_resume_restart_or_mapping_for_every_wait_point() {
    let (old, new) = (load(&v1()), load(V2));
    let points = diff(old.program(), new.program());
    let verdict = |node: &str| points.iter().find(|p| p.node == node).map(|p| (p.verdict, p.reason.clone()));
    assert_eq!(verdict("ask_name").map(|v| v.0), Some(Verdict::Resume));
    assert_eq!(verdict("ask_size").map(|v| v.0), Some(Verdict::Restart));
    let pause = verdict("pause").expect("pause is a wait point");
    assert_eq!(pause.0, Verdict::Mapping);
    assert!(pause.1.contains("was a `wait` node and is now a `ask` node"), "{}", pause.1);
    assert_eq!(points.len(), 3);
}

#[test]
fn a_timer_does_not_survive_into_an_ask_without_a_timeout() {
    let old = load(&v1().replace(
        "    into: name\n    next: ask_size",
        "    into: name\n    timeout: 1h\n    on_timeout: done\n    next: ask_size",
    ));
    let new = load(V2);
    assert!(
        diff(old.program(), new.program()).iter().any(|p| p.node == "ask_name" && p.verdict == Verdict::Mapping),
        "losing a timeout needs a mapping"
    );
    let mut c = Conversation::new(&old, Context::default());
    c.user("hi").expect("starts");
    assert_ne!(c.session.timer, 0);
    let moved = migrate(old.program(), &new, &c.session, &BTreeMap::new()).expect("same node");
    assert_eq!(moved.timer, 0, "the new ask has no timeout, so no timer is live");
}

#[test]
fn a_waiting_session_moves_to_the_new_version_and_goes_on_there() {
    let (old, new) = (load(&v1()), load(V2));
    let ctx = Context { user_name: "Ada".into(), ..Context::default() };
    let mut c = Conversation::new(&old, ctx.clone());
    c.user("hi").expect("starts");
    c.user("Grace").expect("answers");
    assert_eq!(c.waiting_at(), Some("ask_size"));

    let no_map = BTreeMap::new();
    assert!(migrate(old.program(), &new, &c.session, &no_map).is_err(), "ask_size is gone without a map");
    let map = BTreeMap::from([("ask_size".to_string(), "pick_size".to_string())]);
    let moved = migrate(old.program(), &new, &c.session, &map).expect("the map says where to go");
    assert_eq!(moved.program, new.program().hash);

    let mut c2 = Conversation::new(&new, ctx);
    c2.session = moved;
    assert_eq!(c2.waiting_at(), Some("pick_size"));
    assert!(
        c2.vars().contains(&("greeting".to_string(), Value::Text("Cheers".into()))),
        "new variables get their defaults"
    );
    assert!(c2.vars().contains(&("name".to_string(), Value::Text("Grace".into()))), "old variables keep their values");
    c2.user("large").expect("answers in v2");
    let bye = c2.user("nothing").expect("v2's new ask");
    assert_eq!(bye.messages[0].text, "Cheers Grace, nothing");
}

/// `botc deploy`'s plan: live sessions counted by where they wait and what `migrate` does to
/// each (the same the worker will do), those already on the new version apart, those on a
/// version the registry lost as starting over, and those waiting nowhere not counted.
#[test]
fn a_forecast_counts_each_waiting_session_as_the_worker_will_move_it() {
    use botc_runtime::migrate::forecast;
    let (old, new) = (load(&v1()), load(V2));
    let ctx = Context::default();
    let at_name = {
        let mut c = Conversation::new(&old, ctx.clone());
        c.user("hi").expect("starts");
        c.session
    };
    let at_size = {
        let mut c = Conversation::new(&old, ctx.clone());
        c.user("hi").expect("starts");
        c.user("Grace").expect("answers");
        c.session
    };
    let on_new = {
        let mut c = Conversation::new(&new, ctx.clone());
        c.user("hi").expect("starts");
        c.session
    };
    let mut lost = at_name.clone();
    lost.program = [9; 32];
    let fresh = Conversation::new(&old, ctx).session;
    let sessions = vec![at_name.clone(), at_name, at_size.clone(), at_size, on_new, lost, fresh];
    let versions = |h: &[u8; 32]| (*h == old.program().hash).then_some(&old);
    let f = forecast(&new, versions, sessions);
    assert_eq!((f.staying, f.moving, f.restarting, f.waiting()), (1, 2, 3, 6));
    let place =
        |node: &str, moves: bool| f.places.iter().find(|((_, p, m), _)| p == node && *m == moves).map(|(_, v)| v);
    assert_eq!(place("ask_name", true).map(|p| p.count), Some(2));
    let size = place("ask_size", false).expect("ask_size starts over");
    assert_eq!(size.count, 2);
    assert!(size.reason.contains("`ask_size` does not exist"), "{}", size.reason);
    assert_eq!(place("(unknown version)", false).map(|p| p.count), Some(1));
}
