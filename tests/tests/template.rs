//! `infra/template.yaml` against the files it deploys: the workflows and their substitutions, the
//! ticket model the rule sets generate, the routes of `infra/openapi.yaml`, and the REST API's
//! deployment. cfn-lint and checkov (scripts/test) check the template on its own; these check what
//! they cannot see.

use queuematch_asl::StateMachine;
use queuematch_core::ticket_request::{json_schema, DEFAULT_MAX_PLAYERS_PER_TICKET};
use queuematch_core::RuleSet;
use queuematch_e2e::repo_root;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

// ---------------------------------------------------------------- reading the template

/// A YAML document as JSON, CloudFormation's short tags in their long form: `!Ref X` becomes
/// `{"Ref": "X"}`, `!GetAtt A.B` becomes `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` `{"Fn::Sub": s}`.
fn to_json(value: serde_yaml::Value, at: &str) -> Value {
    use serde_yaml::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).unwrap_or_else(|e| panic!("{at}: number {n}: {e}")),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &format!("{at}[{i}]")))
                .collect(),
        ),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let Y::String(k) = k else {
                    panic!("{at}: a key that is not a string: {k:?}")
                };
                let child = to_json(v, &format!("{at}.{k}"));
                out.insert(k, child);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = to_json(tagged.value, &format!("{at}.{tag}"));
            let (key, inner) = match (name, inner) {
                ("Ref", inner) => ("Ref".to_owned(), inner),
                ("GetAtt", Value::String(s)) => {
                    let (resource, attribute) = s
                        .split_once('.')
                        .unwrap_or_else(|| panic!("{at}: !GetAtt {s} names no attribute"));
                    ("Fn::GetAtt".to_owned(), json!([resource, attribute]))
                }
                (other, inner) => (format!("Fn::{other}"), inner),
            };
            Value::Object(Map::from_iter([(key, inner)]))
        }
    }
}

fn read_yaml(relative: &str) -> Value {
    let path = repo_root().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"));
    to_json(yaml, relative)
}

struct Template {
    resources: Map<String, Value>,
}

impl Template {
    fn load() -> Self {
        let root = read_yaml("infra/template.yaml");
        let resources = root["Resources"]
            .as_object()
            .unwrap_or_else(|| panic!("infra/template.yaml has no Resources"))
            .clone();
        Template { resources }
    }

    /// The resources of one type, by logical id.
    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.resources.iter().filter(move |(_, r)| r["Type"] == kind)
    }

    fn resource(&self, id: &str) -> &Value {
        self.resources
            .get(id)
            .unwrap_or_else(|| panic!("infra/template.yaml has no resource {id}"))
    }
}

/// The logical id a `{"Ref": id}` names.
fn ref_of(value: &Value) -> Option<&str> {
    value.get("Ref").and_then(Value::as_str)
}

/// Text with its object keys sorted at every level, so that a digest depends on content only.
fn canonical(value: &Value) -> String {
    let mut text = String::new();
    write_canonical(value, &mut text);
    text
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn workflow_files() -> Vec<String> {
    let dir = repo_root().join("workflows");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with(queuematch_local::workflows::DEFINITION_SUFFIX))
        .collect();
    files.sort();
    files
}

/// `${Name}` placeholders of an ASL file.
fn placeholders(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').unwrap_or(after.len());
        names.insert(after[..end].to_owned());
        rest = &after[end..];
    }
    names
}

// ---------------------------------------------------------------- workflows

#[test]
fn every_workflow_file_is_an_express_state_machine_logging_everything() {
    let template = Template::load();
    let machines: BTreeMap<String, (&String, &Value)> = template
        .of_type("AWS::Serverless::StateMachine")
        .map(|(id, r)| {
            let uri = r["Properties"]["DefinitionUri"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: DefinitionUri must be a path into workflows/"));
            let file = uri
                .strip_prefix("../workflows/")
                .unwrap_or_else(|| panic!("{id}: DefinitionUri {uri} is not in ../workflows/"));
            (file.to_owned(), (id, r))
        })
        .collect();
    let files = workflow_files();
    assert!(!files.is_empty(), "workflows/ holds no definitions");
    assert_eq!(
        machines.keys().cloned().collect::<Vec<_>>(),
        files,
        "the template's state machines and the files of workflows/ differ"
    );
    for (file, (id, machine)) in machines {
        let properties = &machine["Properties"];
        assert_eq!(properties["Type"], "EXPRESS", "{id} ({file})");
        let logging = &properties["Logging"];
        assert_eq!(logging["Level"], "ALL", "{id}: Express keeps no history but its logs");
        assert_eq!(logging["IncludeExecutionData"], true, "{id}");
        let group = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: logs to no log group of this template"));
        assert_eq!(template.resource(group)["Type"], "AWS::Logs::LogGroup", "{id}: {group}");
    }
}

#[test]
fn every_substitution_a_workflow_uses_is_provided_and_the_definition_validates_with_it() {
    let template = Template::load();
    let local = queuematch_local::workflows::substitutions();
    for (id, machine) in template.of_type("AWS::Serverless::StateMachine") {
        let properties = &machine["Properties"];
        let uri = properties["DefinitionUri"].as_str().unwrap_or_default();
        let path = repo_root().join("infra").join(uri);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let given = properties["DefinitionSubstitutions"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let used = placeholders(&text);
        let provided: BTreeSet<String> = given.keys().cloned().collect();
        assert_eq!(
            used, provided,
            "{id}: the placeholders of {uri} and its DefinitionSubstitutions differ"
        );

        // The value each placeholder takes on AWS, with this template's resources in the ARNs.
        let mut values = HashMap::new();
        for (name, value) in &given {
            let function = value["Fn::GetAtt"]
                .as_array()
                .filter(|parts| parts.get(1).and_then(Value::as_str) == Some("Arn"))
                .and_then(|parts| parts[0].as_str())
                .unwrap_or_else(|| panic!("{id}: ${{{name}}} should be !GetAtt <Function>.Arn, not {value}"));
            assert_eq!(
                template.resource(function)["Type"],
                "AWS::Serverless::Function",
                "{id}: ${{{name}}} names {function}"
            );
            values.insert(
                name.clone(),
                format!("arn:aws:lambda:eu-west-1:123456789012:function:stack-{function}-ABC123"),
            );
            assert!(
                local.contains_key(name),
                "{id}: ${{{name}}} has no local value, so queuematch dev cannot run {uri}"
            );
        }
        let machine = StateMachine::from_json_with_substitutions(&text, &values)
            .unwrap_or_else(|e| panic!("{id}: {uri} under the template's substitutions: {e}"));
        assert_eq!(machine.express_problems(), vec![], "{id}: {uri} cannot run as Express");
    }
}

#[test]
fn the_workflow_roles_may_invoke_exactly_the_functions_their_definitions_name() {
    let template = Template::load();
    for (id, machine) in template.of_type("AWS::Serverless::StateMachine") {
        let properties = &machine["Properties"];
        let named: BTreeSet<String> = properties["DefinitionSubstitutions"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(_, v)| v["Fn::GetAtt"][0].as_str().map(str::to_owned))
            .collect();
        let invocable: BTreeSet<String> = properties["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| ref_of(&p["LambdaInvokePolicy"]["FunctionName"]).map(str::to_owned))
            .collect();
        assert_eq!(named, invocable, "{id}");
    }
}

#[test]
fn no_task_gives_up_on_its_function_before_the_function_gives_up_itself() {
    // A Task whose TimeoutSeconds is under its function's Timeout times out (and is retried) while
    // the first invocation may still be running: two of the same task at once, for nothing.
    let template = Template::load();
    for (id, machine) in template.of_type("AWS::Serverless::StateMachine") {
        let properties = &machine["Properties"];
        let definition = properties["DefinitionUri"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has no DefinitionUri"));
        let text = std::fs::read_to_string(repo_root().join("infra").join(definition))
            .unwrap_or_else(|e| panic!("{id}: {definition}: {e}"));
        let asl: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{definition}: {e}"));
        let functions: BTreeMap<String, u64> = properties["DefinitionSubstitutions"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(name, v)| {
                let function = v["Fn::GetAtt"][0].as_str()?;
                let timeout = template.resource(function)["Properties"]["Timeout"].as_u64()?;
                Some((format!("${{{name}}}"), timeout))
            })
            .collect();
        for (state, task) in asl["States"].as_object().into_iter().flatten() {
            if task["Type"] != "Task" {
                continue;
            }
            let function = task["Parameters"]["FunctionName"].as_str().unwrap_or_default();
            let Some(&limit) = functions.get(function) else {
                panic!("{definition}: {state} invokes {function:?}, which no substitution names");
            };
            let timeout = task["TimeoutSeconds"].as_u64().unwrap_or(u64::MAX);
            assert!(
                timeout >= limit,
                "{definition}: {state} times out after {timeout} s, before its function's {limit} s"
            );
        }
    }
}

// ---------------------------------------------------------------- the REST API

fn example_queues() -> Vec<String> {
    let dir = repo_root().join("examples/rulesets");
    let mut queues: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            RuleSet::from_json_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .name
        })
        .collect();
    queues.sort();
    queues
}

#[test]
fn the_ticket_model_is_the_schema_the_rule_sets_generate_and_post_tickets_validates_with_it() {
    let template = Template::load();
    let queues = example_queues();
    let queues: Vec<&str> = queues.iter().map(String::as_str).collect();
    let (model_id, model) = template
        .of_type("AWS::ApiGateway::Model")
        .find(|(_, m)| m["Properties"]["Name"] == "TicketRequest")
        .unwrap_or_else(|| panic!("no TicketRequest model"));
    assert_eq!(
        model["Properties"]["Schema"],
        json_schema(&queues, DEFAULT_MAX_PLAYERS_PER_TICKET),
        "{model_id}: paste `queuematch schema ticket-request --rulesets examples/rulesets` as its Schema"
    );

    let (method_id, method) = template
        .of_type("AWS::ApiGateway::Method")
        .find(|(_, m)| m["Properties"]["OperationName"] == "createTicket")
        .unwrap_or_else(|| panic!("no createTicket method"));
    let properties = &method["Properties"];
    assert_eq!(
        ref_of(&properties["RequestModels"]["application/json"]),
        Some(model_id.as_str())
    );
    let validator = ref_of(&properties["RequestValidatorId"]).unwrap_or_else(|| panic!("{method_id}: no validator"));
    assert_eq!(
        template.resource(validator)["Properties"]["ValidateRequestBody"],
        true,
        "{method_id}: {validator} must validate the body"
    );
    assert_eq!(properties["AuthorizationType"], "COGNITO_USER_POOLS", "{method_id}");
    let integration = &properties["Integration"];
    assert_eq!(
        integration["Type"], "AWS",
        "{method_id}: a service integration, no function"
    );
    let uri = integration["Uri"]["Fn::Sub"].as_str().unwrap_or_default();
    assert!(uri.contains(":sqs:path/"), "{method_id}: sends to SQS, not {uri}");
    let body = integration["RequestTemplates"]["application/json"]
        .as_str()
        .unwrap_or_default();
    for part in [
        "$context.requestId",
        "$context.authorizer.claims.sub",
        "$context.requestTimeEpoch",
        "$input.json('$')",
    ] {
        assert!(body.contains(part), "{method_id}: the mapping template lacks {part}");
    }
}

#[test]
fn the_mapping_template_builds_the_ticket_message_of_the_matcher() {
    // What SQS receives once API Gateway has filled the template in, decoded as SQS decodes a form.
    let template = Template::load();
    let (_, method) = template
        .of_type("AWS::ApiGateway::Method")
        .find(|(_, m)| m["Properties"]["OperationName"] == "createTicket")
        .unwrap_or_else(|| panic!("no createTicket method"));
    let body = method["Properties"]["Integration"]["RequestTemplates"]["application/json"]
        .as_str()
        .unwrap_or_default();
    let request = json!({"queue": "ranked-1v1", "players": [{"id": "p-1", "attributes": {"skill": 1.5e+3}}]});
    let filled = body
        .replace("$util.urlEncode($context.requestId)", "c0ffee-1")
        .replace("$util.urlEncode($context.authorizer.claims.sub)", "p-1")
        .replace("$context.requestTimeEpoch", "1700000000000")
        .replace("$util.urlEncode($input.json('$'))", &form_encode(&request.to_string()));
    assert!(!filled.contains('$'), "a variable the test does not fill in: {filled}");
    let message = filled
        .strip_prefix("Action=SendMessage&MessageBody=")
        .unwrap_or_else(|| panic!("not a SendMessage form: {filled}"));
    assert!(!message.contains('&'), "the form has more than the message: {filled}");
    let decoded = form_decode(message);
    let message: Value = serde_json::from_str(&decoded).unwrap_or_else(|e| panic!("{decoded}: {e}"));
    assert_eq!(
        message,
        json!({"kind": "ticket", "ticketId": "c0ffee-1", "playerId": "p-1", "receivedAt": 1_700_000_000_000_u64, "request": request})
    );
}

/// The tickets queue takes the largest body the API accepts, in its envelope, and refuses one well
/// over it; SQS's refusal of a message is the caller's 413 and any other refusal the deployment's 500.
#[test]
fn the_tickets_queue_takes_a_64_kib_ticket_and_refuses_what_is_over_it() {
    let template = Template::load();
    let limit = template.resources["TicketsQueue"]["Properties"]["MaximumMessageSize"]
        .as_u64()
        .unwrap_or_else(|| panic!("the tickets queue has no MaximumMessageSize (SQS's default is 256 KiB)"));
    let (_, method) = template
        .of_type("AWS::ApiGateway::Method")
        .find(|(_, m)| m["Properties"]["OperationName"] == "createTicket")
        .unwrap_or_else(|| panic!("no createTicket method"));
    let integration = &method["Properties"]["Integration"];
    // The largest envelope: a request id and a Cognito sub are UUIDs, the epoch 13 digits.
    let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let largest_body = "x".repeat(queuematch_local::dev::MAX_BODY_BYTES);
    let envelope = integration["RequestTemplates"]["application/json"]
        .as_str()
        .unwrap_or_default()
        .replace("$util.urlEncode($context.requestId)", uuid)
        .replace("$util.urlEncode($context.authorizer.claims.sub)", uuid)
        .replace("$context.requestTimeEpoch", "1700000000000")
        .replace("$util.urlEncode($input.json('$'))", &largest_body);
    let message = form_decode(envelope.trim_start_matches("Action=SendMessage&MessageBody="));
    let message_len = u64::try_from(message.len()).unwrap_or(u64::MAX);
    assert!(
        message_len <= limit,
        "a 64 KiB ticket makes a {message_len}-byte message, over {limit}"
    );
    assert!(
        limit <= 65 * 1024,
        "a body of {limit} bytes, far over 64 KiB, would be queued"
    );

    let answers: Vec<(String, String)> =
        string_pairs(&integration["IntegrationResponses"], "SelectionPattern", "StatusCode")
            .into_iter()
            .collect();
    // API Gateway matches a pattern against the whole status code.
    let answer = |sqs_status: &str| -> Vec<&str> {
        answers
            .iter()
            .filter(|(pattern, _)| {
                let anchored = format!("^(?:{pattern})$");
                regex::Regex::new(&anchored)
                    .unwrap_or_else(|e| panic!("{pattern}: {e}"))
                    .is_match(sqs_status)
            })
            .map(|(_, status)| status.as_str())
            .collect()
    };
    for (sqs, api) in [
        ("200", "202"),
        ("400", "413"),
        ("403", "500"),
        ("404", "500"),
        ("413", "500"),
        ("500", "503"),
        ("503", "503"),
    ] {
        assert_eq!(answer(sqs), [api], "SQS answering {sqs}");
    }
    let documented: BTreeSet<&str> = method["Properties"]["MethodResponses"]
        .as_array()
        .map(|responses| responses.iter().filter_map(|r| r["StatusCode"].as_str()).collect())
        .unwrap_or_default();
    for (_, status) in &answers {
        assert!(
            documented.contains(status.as_str()),
            "{status} is not among the method's responses"
        );
    }
}

/// Fields `a` and `b` of each object of the array `list`, as strings ("" where one is missing).
fn string_pairs(list: &Value, a: &str, b: &str) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| (text(&item[a]), text(&item[b])))
        .collect()
}

/// `application/x-www-form-urlencoded`, as `$util.urlEncode` writes it.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or_else(|e| panic!("{text}: {e}"));
                out.push(u8::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{text}: %{hex}: {e}")));
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The path of an `AWS::ApiGateway::Resource`, walking its parents up to the API's root.
fn resource_path(template: &Template, id: &str) -> String {
    let properties = &template.resource(id)["Properties"];
    let part = properties["PathPart"].as_str().unwrap_or_default();
    let parent = &properties["ParentId"];
    if parent["Fn::GetAtt"][1] == "RootResourceId" {
        format!("/{part}")
    } else {
        let parent = ref_of(parent).unwrap_or_else(|| panic!("{id}: ParentId is neither a resource nor the root"));
        format!("{}/{part}", resource_path(template, parent))
    }
}

#[test]
fn the_rest_api_serves_the_routes_of_the_openapi_document() {
    let template = Template::load();
    let served: BTreeSet<(String, String)> = template
        .of_type("AWS::ApiGateway::Method")
        .map(|(id, m)| {
            let resource = ref_of(&m["Properties"]["ResourceId"]).unwrap_or_else(|| panic!("{id}: no ResourceId"));
            let method = m["Properties"]["HttpMethod"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase();
            (resource_path(&template, resource), method)
        })
        .collect();
    let openapi = read_yaml("infra/openapi.yaml");
    // The WebSocket has its own API on AWS; the document itself, the operators' console with its
    // push and the traffic tap are only served by queuematch dev.
    let elsewhere = [
        "/v1/events",
        "/openapi.yaml",
        "/v1/ops/traffic",
        "/v1/ops/stream",
        "/console",
        "/console/{asset}",
    ];
    let documented: BTreeSet<(String, String)> = openapi["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(path, _)| !elsewhere.contains(&path.as_str()))
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .filter(|(method, _)| ["get", "put", "post", "delete", "patch"].contains(&method.as_str()))
                .map(|(method, _)| (path.clone(), method.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        served, documented,
        "the REST API's methods and infra/openapi.yaml's operations differ"
    );
}

#[test]
fn the_rest_api_deployment_is_named_after_what_it_deploys() {
    // CloudFormation makes a new deployment only for a new logical id, so the id carries a digest of
    // every resource of the API; a change without a rename would never reach the stage.
    let template = Template::load();
    let deployed: Map<String, Value> = template
        .resources
        .iter()
        .filter(|(_, r)| {
            let kind = r["Type"].as_str().unwrap_or_default();
            kind.starts_with("AWS::ApiGateway::")
                && kind != "AWS::ApiGateway::Deployment"
                && kind != "AWS::ApiGateway::Stage"
        })
        .map(|(id, r)| (id.clone(), r.clone()))
        .collect();
    let digest = Sha256::digest(canonical(&Value::Object(deployed)).as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    let expected = format!("RestApiDeployment{hex}");
    let deployments: Vec<&String> = template
        .of_type("AWS::ApiGateway::Deployment")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        deployments,
        vec![&expected],
        "rename the REST API's deployment (and the stage's DeploymentId)"
    );
    let stages: Vec<&Value> = template
        .of_type("AWS::ApiGateway::Stage")
        .map(|(_, s)| &s["Properties"]["DeploymentId"])
        .collect();
    assert_eq!(stages, vec![&json!({"Ref": expected})]);
}

#[test]
fn the_table_has_the_key_indexes_and_ttl_the_dynamodb_adapter_uses() {
    use queuematch_aws::dynamo::{INDEXES, TABLE_KEY, TTL_ATTRIBUTE};
    let template = Template::load();
    let table = &template.resource("Table")["Properties"];
    // Attribute names with their key types, in order.
    type KeySchema = Vec<(String, String)>;
    let key_schema = |schema: &Value| -> KeySchema {
        schema
            .as_array()
            .unwrap_or_else(|| panic!("a key schema is a list: {schema}"))
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap_or_default().to_owned(),
                    k["KeyType"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let hash_range = |pk: &str, sk: &str| vec![(pk.to_owned(), "HASH".to_owned()), (sk.to_owned(), "RANGE".to_owned())];
    assert_eq!(key_schema(&table["KeySchema"]), hash_range(TABLE_KEY.0, TABLE_KEY.1));

    // Index names are case-sensitive: a query naming one the table lacks fails every time.
    let indexes: BTreeSet<(String, KeySchema, String)> = table["GlobalSecondaryIndexes"]
        .as_array()
        .unwrap_or_else(|| panic!("the table has no GlobalSecondaryIndexes"))
        .iter()
        .map(|i| {
            (
                i["IndexName"].as_str().unwrap_or_default().to_owned(),
                key_schema(&i["KeySchema"]),
                i["Projection"]["ProjectionType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<_> = INDEXES
        .iter()
        .map(|&(name, pk, sk)| (name.to_owned(), hash_range(pk, sk), "ALL".to_owned()))
        .collect();
    assert_eq!(indexes, expected);

    let defined: BTreeSet<(String, String)> =
        string_pairs(&table["AttributeDefinitions"], "AttributeName", "AttributeType")
            .into_iter()
            .collect();
    let keys: BTreeSet<(String, String)> = [TABLE_KEY.0, TABLE_KEY.1]
        .into_iter()
        .chain(INDEXES.iter().flat_map(|&(_, pk, sk)| [pk, sk]))
        .map(|k| (k.to_owned(), "S".to_owned()))
        .collect();
    assert_eq!(defined, keys);
    assert_eq!(
        (
            &table["TimeToLiveSpecification"]["AttributeName"],
            &table["TimeToLiveSpecification"]["Enabled"]
        ),
        (&json!(TTL_ATTRIBUTE), &json!(true))
    );
}

#[test]
fn every_dead_letter_queue_has_an_alarm_on_its_depth() {
    let template = Template::load();
    let alarmed: BTreeSet<String> = template
        .of_type("AWS::CloudWatch::Alarm")
        .filter(|(_, alarm)| alarm["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible")
        .filter_map(|(_, alarm)| {
            let dimensions = alarm["Properties"]["Dimensions"].as_array()?;
            dimensions
                .iter()
                .find(|d| d["Name"] == "QueueName")
                .and_then(|d| d["Value"]["Fn::GetAtt"][0].as_str())
                .map(str::to_owned)
        })
        .collect();
    let dead_letters: BTreeSet<String> = template
        .of_type("AWS::SQS::Queue")
        .map(|(id, _)| id.clone())
        .filter(|id| id.ends_with("DeadLetterQueue"))
        .collect();
    assert!(!dead_letters.is_empty());
    let unwatched: Vec<_> = dead_letters.difference(&alarmed).collect();
    assert!(unwatched.is_empty(), "no alarm on the depth of {unwatched:?}");
}

#[test]
fn the_yaml_reader_keeps_short_tags_and_the_digest_ignores_key_order() {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str("a: !Ref X\nb: !GetAtt T.Arn\nc: !Sub 'x-${A}'\nd: !If [C, 1, 2]\n")
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        to_json(yaml, "$"),
        json!({"a": {"Ref": "X"}, "b": {"Fn::GetAtt": ["T", "Arn"]}, "c": {"Fn::Sub": "x-${A}"}, "d": {"Fn::If": ["C", 1, 2]}})
    );
    assert_eq!(
        canonical(&json!({"b": 1, "a": {"d": 2, "c": 3}})),
        r#"{"a":{"c":3,"d":2},"b":1}"#
    );
    assert_eq!(
        placeholders("x ${A} ${B} ${A}"),
        BTreeSet::from(["A".to_owned(), "B".to_owned()])
    );
}

// ---------------------------------------------------------------- the functions

/// Stands in for what CloudFormation resolves at deploy time: parameters take their defaults unless
/// `overrides` names them, pseudo parameters a fixed region and account, resources names and ARNs
/// in their own shapes. Close enough for the functions' configs to judge the values.
struct Resolver<'a> {
    template: &'a Template,
    parameters: Map<String, Value>,
    overrides: HashMap<&'a str, &'a str>,
}

impl Resolver<'_> {
    fn reference(&self, name: &str) -> String {
        match name {
            "AWS::Region" => return "eu-west-1".into(),
            "AWS::AccountId" => return "123456789012".into(),
            "AWS::Partition" => return "aws".into(),
            "AWS::StackName" => return "queuematch".into(),
            _ => {}
        }
        if let Some(value) = self.overrides.get(name) {
            return (*value).to_owned();
        }
        if let Some(parameter) = self.parameters.get(name) {
            return match &parameter["Default"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
        }
        match self.template.resource(name)["Type"].as_str().unwrap_or_default() {
            "AWS::SQS::Queue" => format!("https://sqs.eu-west-1.amazonaws.com/123456789012/{name}"),
            _ => format!("{name}-physical-id"),
        }
    }

    fn attribute(&self, resource: &str, attribute: &str) -> String {
        let kind = self.template.resource(resource)["Type"].as_str().unwrap_or_default();
        match (kind, attribute) {
            ("AWS::Serverless::StateMachine", "Arn") => {
                format!("arn:aws:states:eu-west-1:123456789012:stateMachine:{resource}")
            }
            ("AWS::Serverless::Function", "Arn") => {
                format!("arn:aws:lambda:eu-west-1:123456789012:function:{resource}")
            }
            (_, "Arn") => format!("arn:aws:{}:eu-west-1:123456789012:{resource}", kind.to_lowercase()),
            (_, other) => format!("{resource}-{other}"),
        }
    }

    fn resolve(&self, value: &Value) -> String {
        if let Some(s) = value.as_str() {
            return s.to_owned();
        }
        if let Some(name) = ref_of(value) {
            return self.reference(name);
        }
        if let Some([resource, attribute]) = value["Fn::GetAtt"].as_array().map(Vec::as_slice) {
            return self.attribute(
                resource.as_str().unwrap_or_default(),
                attribute.as_str().unwrap_or_default(),
            );
        }
        if let Some(text) = value["Fn::Sub"].as_str() {
            let mut out = String::new();
            let mut rest = text;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after.find('}').unwrap_or(after.len());
                let name = &after[..end];
                out.push_str(&match name.split_once('.') {
                    Some((resource, attribute)) => self.attribute(resource, attribute),
                    None => self.reference(name),
                });
                rest = &after[(end + 1).min(after.len())..];
            }
            out.push_str(rest);
            return out;
        }
        if let Some([separator, items]) = value["Fn::Join"].as_array().map(Vec::as_slice) {
            let separator = separator.as_str().unwrap_or_default();
            let items: Vec<String> = match items.as_array() {
                Some(items) => items.iter().map(|i| self.resolve(i)).collect(),
                None => vec![self.resolve(items)],
            };
            return items.join(separator);
        }
        panic!("the test cannot resolve {value}")
    }
}

/// Each function's binary and its environment as deployed with `overrides`.
fn functions_as_deployed(overrides: &[(&'static str, &'static str)]) -> Vec<(String, String, HashMap<String, String>)> {
    let root = read_yaml("infra/template.yaml");
    let template = Template::load();
    let resolver = Resolver {
        template: &template,
        parameters: root["Parameters"].as_object().cloned().unwrap_or_default(),
        overrides: overrides.iter().copied().collect(),
    };
    let globals = root["Globals"]["Function"]["Environment"]["Variables"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    template
        .of_type("AWS::Serverless::Function")
        .map(|(id, function)| {
            let metadata = &function["Metadata"];
            assert_eq!(
                metadata["BuildMethod"], "rust-cargolambda",
                "{id}: built by cargo-lambda"
            );
            assert_eq!(
                function["Properties"]["CodeUri"], "..",
                "{id}: built from the workspace's root"
            );
            let binary = metadata["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: names no binary"))
                .to_owned();
            let mut env: HashMap<String, String> = HashMap::new();
            let own = function["Properties"]["Environment"]["Variables"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (name, value) in globals.iter().chain(own.iter()) {
                env.insert(name.clone(), resolver.resolve(value));
            }
            (id.clone(), binary, env)
        })
        .collect()
}

#[test]
fn every_function_is_a_binary_of_the_lambda_crate_and_every_binary_a_function() {
    let deployed: BTreeSet<String> = functions_as_deployed(&[])
        .into_iter()
        .map(|(_, binary, _)| binary)
        .collect();
    let crate_binaries: BTreeSet<String> = queuematch_lambda::config::BINARIES
        .iter()
        .map(|b| (*b).to_owned())
        .collect();
    assert_eq!(
        deployed, crate_binaries,
        "the template's functions and queuematch-lambda's binaries differ"
    );
    for binary in &crate_binaries {
        let main = repo_root().join("handlers/lambda/src/bin").join(format!("{binary}.rs"));
        assert!(main.is_file(), "{binary} has no {}", main.display());
    }
}

#[test]
fn every_function_is_given_the_environment_its_binary_needs_on_either_fleet() {
    let deployments: [&[(&'static str, &'static str)]; 2] = [
        &[],
        &[
            ("FleetKind", "ecs"),
            ("EcsSubnets", "subnet-0a1b2c3d"),
            ("EcsSecurityGroups", "sg-0a1b2c3d"),
        ],
    ];
    for overrides in deployments {
        for (id, binary, vars) in functions_as_deployed(overrides) {
            let env = queuematch_lambda::config::Env::from_map("template", vars.into_iter().collect());
            if let Err(e) = queuematch_lambda::config::check(&binary, &env) {
                panic!("{id} ({binary}), deployed with {overrides:?}: {e}");
            }
        }
    }
}

/// The metrics a widget of the dashboard shows: `namespace/name`, from its metric arrays and from
/// the SEARCH expressions among them.
fn widget_metrics(widget: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for entry in widget["properties"]["metrics"].as_array().into_iter().flatten() {
        let entry = entry
            .as_array()
            .unwrap_or_else(|| panic!("a widget's metric is an array: {entry}"));
        match (
            entry.first().and_then(Value::as_str),
            entry.get(1).and_then(Value::as_str),
        ) {
            (Some(namespace), Some(name)) => {
                found.insert(format!("{namespace}/{name}"));
            }
            _ => {
                let expression = entry[0]["expression"]
                    .as_str()
                    .unwrap_or_else(|| panic!("neither a metric nor an expression: {entry:?}"));
                let namespace = expression
                    .strip_prefix("SEARCH('{")
                    .and_then(|rest| rest.split_once(','))
                    .map(|(namespace, _)| namespace)
                    .unwrap_or_else(|| panic!("not a SEARCH of a namespace and its dimensions: {expression}"));
                let name = expression
                    .split_once("MetricName=\"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(name, _)| name)
                    .unwrap_or_else(|| panic!("a SEARCH names its metric: {expression}"));
                found.insert(format!("{namespace}/{name}"));
            }
        }
    }
    found
}

#[test]
fn the_dashboard_shows_every_metric_the_functions_write_and_every_queue_s_depth() {
    let root = read_yaml("infra/template.yaml");
    let template = Template::load();
    let resolver = Resolver {
        template: &template,
        parameters: root["Parameters"].as_object().cloned().unwrap_or_default(),
        overrides: HashMap::new(),
    };
    let dashboards: Vec<_> = template.of_type("AWS::CloudWatch::Dashboard").collect();
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let body = resolver.resolve(&dashboards[0].1["Properties"]["DashboardBody"]);
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("the dashboard's body is not JSON: {e}"));
    let widgets = body["widgets"].as_array().unwrap_or_else(|| panic!("no widgets"));
    let shown: BTreeSet<String> = widgets.iter().flat_map(widget_metrics).collect();
    for metric in queuematch_lambda::metrics::Metric::ALL {
        let name = format!("{}/{}", queuematch_lambda::metrics::NAMESPACE, metric.name());
        assert!(shown.contains(&name), "the dashboard does not show {name}");
    }
    // Nothing shown that no function writes (a misspelt name would draw an empty graph).
    for name in shown.iter().filter(|n| n.starts_with("queuematch/")) {
        assert!(
            queuematch_lambda::metrics::Metric::ALL
                .iter()
                .any(|m| format!("queuematch/{}", m.name()) == *name),
            "{name} is written by no function"
        );
    }
    // Every queue's depth, dead-letter queues included.
    let depths: BTreeSet<String> = widgets
        .iter()
        .flat_map(|w| w["properties"]["metrics"].as_array().cloned().unwrap_or_default())
        .filter(|m| m[0] == "AWS/SQS" && m[1] == "ApproximateNumberOfMessagesVisible" && m[2] == "QueueName")
        .filter_map(|m| m[3].as_str().map(str::to_owned))
        .collect();
    let queues: BTreeSet<String> = template
        .of_type("AWS::SQS::Queue")
        .map(|(id, _)| resolver.attribute(id, "QueueName"))
        .collect();
    assert_eq!(depths, queues);
    // Widgets in the region of the stack, on a grid of 24 columns.
    for widget in widgets {
        assert_eq!(widget["properties"]["region"], "eu-west-1", "{widget}");
        let (x, width) = (
            widget["x"].as_u64().unwrap_or(99),
            widget["width"].as_u64().unwrap_or(99),
        );
        assert!(x + width <= 24, "{widget}");
    }
}
