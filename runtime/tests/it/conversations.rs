//! Every node kind, driven through real conversations.

use crate::{Chat, texts};
use botc_runtime::session::State;
use botc_runtime::vm::{Button, Error, Trap};
use botc_runtime::{Context, Effect, Input, Limits, step};

const HELLO: &str = r#"
flow: hello
start: ask_name
vars:
  name: text
nodes:
  ask_name:
    ask: "What's your name?"
    into: name
    next: greet
  greet:
    say: "Nice to meet you, {{ name }}! I'm talking to {{ user.name }} on {{ event.platform }}."
    next: done
  done:
    end:
"#;

#[test]
fn a_conversation_asks_stores_and_answers() {
    let mut c = Chat::new(HELLO);
    assert_eq!(c.say("hi"), ["What's your name?"]);
    assert_eq!(c.session.state, State::Ask { ask: 0 });
    let step = c.send(Input::Text("  Grace ".into()));
    assert_eq!(texts(&step), ["Nice to meet you, Grace! I'm talking to Ada on web."]);
    assert_eq!(step.effects.last(), Some(&Effect::End));
    assert_eq!(c.session.state, State::Ended);
    assert_eq!(c.say("anyone?"), Vec::<String>::new(), "an ended conversation ignores input");
}

const AGES: &str = r#"
flow: ages
start: ask_age
vars:
  age: integer
nodes:
  ask_age:
    ask: How old are you?
    into: age
    expect: integer
    retries: 1
    reprompt: "A whole number, please."
    on_invalid: give_up
    next: show
  show:
    say: "In ten years you will be {{ age + 10 }}."
    next: done
  give_up:
    say: Never mind.
    next: done
  done:
    end:
"#;

#[test]
fn typed_answers_retry_and_give_up() {
    let mut c = Chat::new(AGES);
    c.say("start");
    assert_eq!(c.say("old"), ["A whole number, please."]);
    assert_eq!(c.say("very old"), ["Never mind."], "one retry, then on_invalid");
    let mut c = Chat::new(AGES);
    c.say("start");
    assert_eq!(c.say("x"), ["A whole number, please."]);
    assert_eq!(c.say(" 32 "), ["In ten years you will be 42."]);
}

#[test]
fn choices_are_buttons_and_match_without_case() {
    let mut c = Chat::new(
        r#"
flow: sizes
start: pick
vars:
  size: text
nodes:
  pick:
    ask: Which size?
    into: size
    expect: { choice: [Small, Large] }
    next: show
  show:
    say: "{{ size }} it is."
    next: done
  done:
    end:
"#,
    );
    let step = c.send(Input::Text("hi".into()));
    let Effect::Send { buttons, .. } = &step.effects[0] else { panic!("sends the prompt") };
    assert_eq!(
        buttons,
        &[
            Button { label: "Small".into(), value: Some("Small".into()), url: None },
            Button { label: "Large".into(), value: Some("Large".into()), url: None }
        ]
    );
    assert_eq!(
        c.send(Input::Button("large".into())).effects[0],
        Effect::Send { text: "Large it is.".into(), image: None, buttons: vec![] }
    );
}

const REMIND: &str = r#"
flow: remind
start: ask_ready
vars:
  ready: boolean
nodes:
  ask_ready:
    ask: Ready?
    into: ready
    expect: boolean
    timeout: 10m
    on_timeout: nudge
    next: pause
  nudge:
    say: Still there?
    next: ask_ready
  pause:
    wait: 1h
    next: remind
  remind:
    say: "Reminder: ready is {{ ready }}."
    next: done
  done:
    end:
"#;

#[test]
fn timeouts_fire_once_and_stale_timers_are_ignored() {
    let mut c = Chat::new(REMIND);
    let first = c.send(Input::Text("hi".into()));
    assert_eq!(first.effects[1], Effect::StartTimer { timer: 1, at: c.now + 600 });
    c.now += 600;
    let fired = c.send(Input::Timer { timer: 1 });
    assert_eq!(texts(&fired), ["Still there?", "Ready?"]);
    assert!(fired.effects.contains(&Effect::StartTimer { timer: 2, at: c.now + 600 }));
    let stale = c.send(Input::Timer { timer: 1 });
    assert_eq!(stale.ignored, Some("stale timer"));
    let answered = c.send(Input::Text("yes".into()));
    assert!(answered.effects.contains(&Effect::CancelTimer { timer: 2 }));
    assert_eq!(answered.effects.last(), Some(&Effect::StartTimer { timer: 3, at: c.now + 3600 }));
    assert_eq!(c.session.state, State::Timer { pc: c.session_pc() });
    assert_eq!(c.say("hello?"), Vec::<String>::new(), "text during a wait is ignored");
    c.now += 3600;
    assert_eq!(texts(&c.send(Input::Timer { timer: 3 })), ["Reminder: ready is true."]);
}

impl Chat {
    fn session_pc(&self) -> u32 {
        match self.session.state {
            State::Timer { pc } => pc,
            _ => u32::MAX,
        }
    }
}

#[test]
fn http_results_come_back_as_input() {
    let yaml = r#"
flow: order
start: fetch
vars:
  resp: json
nodes:
  fetch:
    http: "https://api.example.com/orders/{{ user.id }}"
    method: POST
    headers: { Authorization: "Bearer t" }
    body: '{"who": "{{ user.name }}"}'
    into: resp
    on_error: failed
    next: show
  show:
    say: "Order {{ resp.body.id }} is {{ resp.body.state }} ({{ resp.status }})."
    next: done
  failed:
    say: Sorry, the shop is down.
    next: done
  done:
    end:
"#;
    let mut c = Chat::new(yaml);
    let step = c.send(Input::Text("status?".into()));
    assert_eq!(
        step.effects,
        [Effect::Http {
            method: botc_bytecode::Method::Post,
            url: "https://api.example.com/orders/u1".into(),
            headers: vec![("Authorization".into(), "Bearer t".into())],
            body: Some("{\"who\": \"Ada\"}".into()),
        }]
    );
    let ok = c.send(Input::Http { status: 200, body: serde_json::json!({"id": 7, "state": "baking"}) });
    assert_eq!(texts(&ok), ["Order 7 is baking (200)."]);
    let mut c = Chat::new(yaml);
    c.send(Input::Text("status?".into()));
    assert_eq!(
        texts(&c.send(Input::Http { status: 503, body: serde_json::Value::Null })),
        ["Sorry, the shop is down."]
    );
}

#[test]
fn sub_flows_take_arguments_and_return_results() {
    let mut c = Chat::new(
        r#"
flow: calls
start: go
vars:
  greeting: text
nodes:
  go:
    call: greet
    with: { name: 'user.name', times: 2 }
    into: greeting
    next: show
  show:
    say: "{{ greeting }}"
    next: done
  done:
    end:
subflows:
  greet:
    params: { name: text, times: integer }
    returns: text
    vars: { mood: text }
    start: ask_mood
    nodes:
      ask_mood:
        ask: "How are you, {{ name }}?"
        into: mood
        next: back
      back:
        return: '"Hello " + name + " x" + text(times) + " (" + mood + ")"'
"#,
    );
    assert_eq!(c.say("hi"), ["How are you, Ada?"]);
    assert_eq!(c.session.frames.len(), 2, "waiting inside the sub-flow");
    assert_eq!(c.say("great"), ["Hello Ada x2 (great)"]);
}

#[test]
fn handoff_waits_for_the_agent_when_it_resumes() {
    let mut c = Chat::new(
        r#"
flow: human
start: hand
nodes:
  hand:
    handoff: billing
    reason: "{{ user.name }} disputes a charge"
    next: back
  back:
    say: Welcome back!
    next: done
  done:
    end:
"#,
    );
    let step = c.send(Input::Text("refund!".into()));
    assert_eq!(
        step.effects,
        [Effect::Handoff { queue: "billing".into(), reason: Some("Ada disputes a charge".into()) }]
    );
    assert_eq!(c.say("hello?"), Vec::<String>::new());
    assert_eq!(texts(&c.send(Input::HandBack)), ["Welcome back!"]);
}

#[test]
fn branches_and_expressions_compute() {
    let mut c = Chat::new(
        r#"
flow: calc
start: ask_n
vars:
  n: integer
  label: { type: text, default: "" }
  tags: { type: list, default: [a, b] }
nodes:
  ask_n:
    ask: Number?
    into: n
    expect: integer
    next: compute
  compute:
    set:
      label: 'upper("n=") + text(n * 2 + 1) + " " + join(tags, "+") + " " + text(round(n / 4)) + " " + text(max(n, 10) % 7)'
    next: pick
  pick:
    branch:
      - when: 'n > 100 and not ("a" not in tags)'
        goto: big
      - when: 'n in [1, 2, 3] or len(label) == 0'
        goto: small
    else: mid
  big:
    say: "big {{ label }}"
    next: ask_n
  small:
    say: "small {{ label }}"
    next: ask_n
  mid:
    say: "mid {{ label }}"
    next: ask_n
"#,
    );
    c.say("go");
    assert_eq!(c.say("200")[0], "big N=401 a+b 50 4");
    assert_eq!(c.say("2")[0], "small N=5 a+b 1 3");
    assert_eq!(c.say("50")[0], "mid N=101 a+b 13 1");
}

#[test]
fn duplicate_events_and_foreign_sessions_change_nothing() {
    let mut c = Chat::new(HELLO);
    c.say("hi");
    let before = c.session.clone();
    let ctx = Context { event_id: format!("e{}", c.events), ..Context::default() };
    let again =
        step(&c.program, &mut c.session, Input::Text("Grace".into()), &ctx, c.now, &Limits::default()).expect("ok");
    assert_eq!(again.ignored, Some("event already applied"));
    assert_eq!(c.session, before);

    let other = Chat::new(REMIND);
    let mut foreign = other.session.clone();
    let err = step(&c.program, &mut foreign, Input::Text("x".into()), &Context::default(), 0, &Limits::default());
    assert_eq!(err, Err(Error::Trap(Trap::WrongProgram)));
}

#[test]
fn fuel_turns_a_long_step_into_a_trap_and_leaves_the_session() {
    let c = Chat::new(HELLO);
    let mut session = c.session.clone();
    let tiny = Limits { fuel: 2 };
    let r = step(&c.program, &mut session, Input::Text("hi".into()), &Context::default(), 0, &tiny);
    assert_eq!(r, Err(Error::Trap(Trap::OutOfFuel { fuel: 2 })));
    assert_eq!(session, c.session, "a trapped step changes nothing");
}

#[test]
fn the_same_inputs_give_the_same_outputs() {
    let run = || {
        let mut c = Chat::new(REMIND);
        let mut all = Vec::new();
        for input in
            [Input::Text("hi".into()), Input::Timer { timer: 1 }, Input::Text("no".into()), Input::Timer { timer: 3 }]
        {
            all.push(c.send(input));
        }
        (all, c.session.encode())
    };
    assert_eq!(run(), run());
}

#[test]
fn values_inserted_into_http_requests_are_escaped() {
    let mut c = Chat::new(
        r#"
flow: search
start: ask_q
vars:
  q: text
  resp: json
nodes:
  ask_q:
    ask: Search for?
    into: q
    next: fetch
  fetch:
    http: "https://api.example.com/search?q={{ q }}&lang=en"
    method: POST
    body: '{"q": "{{ q }}"}'
    into: resp
    next: done
  done:
    end:
"#,
    );
    c.say("hi");
    let step = c.send(Input::Text(r#"fish & "chips"/50%?"#.into()));
    let Effect::Http { url, body, .. } = &step.effects[0] else { panic!("requests: {:?}", step.effects) };
    assert_eq!(url, "https://api.example.com/search?q=fish%20%26%20%22chips%22%2F50%25%3F&lang=en");
    let body = body.as_deref().expect("a body");
    let parsed: serde_json::Value = serde_json::from_str(body).expect("the body is valid JSON");
    assert_eq!(parsed["q"], r#"fish & "chips"/50%?"#);
}

#[test]
fn choices_match_without_case_in_any_script_and_ended_conversations_keep_their_variables() {
    let mut c = Chat::new(
        r#"
flow: dessert
start: pick
vars:
  d: text
nodes:
  pick:
    ask: Which?
    into: d
    expect: { choice: ["Crème brûlée", "Ñandú"] }
    next: done
  done:
    end:
"#,
    );
    c.say("hi");
    let step = c.send(Input::Text("CRÈME BRÛLÉE".into()));
    assert_eq!(step.effects.last(), Some(&Effect::End));
    assert_eq!(c.session.frames[0].vars[0], botc_runtime::Value::Text("Crème brûlée".into()));
}
