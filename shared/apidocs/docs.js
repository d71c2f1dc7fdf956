// The API's page: every operation of the OpenAPI document of the service that serves it
// (its GET /openapi.json), with its parameters, request body and answers, and the schemas
// they name. Served as written (no build step, no library); it asks nothing of anyone
// but that service, and puts the document's words on the page as text, never as markup.
"use strict";

const METHODS = ["get", "put", "post", "patch", "delete", "head", "options", "trace"];
// What a schema may say beside its type that a caller needs to know.
const CONSTRAINTS = ["enum", "format", "minLength", "maxLength", "minimum", "maximum",
  "exclusiveMinimum", "exclusiveMaximum", "pattern", "minItems", "maxItems", "uniqueItems",
  "default", "example"];

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, given] of Object.entries(props)) {
    if (given === undefined || given === null || given === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), given);
    else if (name === "text") node.textContent = given;
    else if (name === "class") node.className = given;
    else node.setAttribute(name, given === true ? "" : given);
  }
  node.append(...children.flat(Infinity).filter((child) => child !== null && child !== undefined
    && child !== false));
  return node;
}

// -- the document's schemas ------------------------------------------------------------
// A local $ref ("#/components/schemas/CaseView") names a part of the document.
function resolve(spec, ref) {
  if (!ref.startsWith("#/")) return undefined;
  return ref.slice(2).split("/")
    .map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"))
    .reduce((found, part) => found?.[part], spec);
}

const refName = (ref) => ref.split("/").pop();

// A field that may be null and is otherwise of another schema, as marshmallow's fields
// with allow_none come out in OpenAPI 3.0: any of (an object or null, that schema).
function orNull(schema) {
  const choices = schema.anyOf ?? schema.oneOf;
  if (choices?.length !== 2) return null;
  const nulls = choices.findIndex((choice) => choice.nullable && !choice.$ref
    && Object.keys(choice).every((key) => key === "nullable" || key === "type"));
  return nulls === -1 ? null : choices[1 - nulls];
}

function typeOf(schema) {
  if (!schema) return "any";
  if (schema.$ref) return refName(schema.$ref);
  if (orNull(schema)) return `${typeOf(orNull(schema))} or null`;
  let type = schema.type ?? (schema.oneOf ? "one of" : schema.anyOf ? "any of"
    : schema.allOf ? "all of" : schema.properties ? "object" : "any");
  if (type === "array") type = `array of ${typeOf(schema.items)}`;
  if (type === "object" && schema.additionalProperties && typeof schema.additionalProperties
    === "object" && !schema.properties) {
    type = `object of ${typeOf(schema.additionalProperties)}`;
  }
  return schema.nullable ? `${type} or null` : type;
}

function constraints(schema) {
  if (!schema || schema.$ref) return null;
  const said = CONSTRAINTS.filter((name) => schema[name] !== undefined)
    .map((name) => name === "enum" ? `one of ${schema.enum.map((v) => JSON.stringify(v))
      .join(", ")}` : name === "pattern" ? `pattern ${schema.pattern}`
      : `${name} ${JSON.stringify(schema[name])}`);
  if (schema.readOnly) said.push("read only");
  if (schema.writeOnly) said.push("write only");
  return said.length ? el("span", { class: "constraints", text: said.join("; ") }) : null;
}

// The schema's fields, each with its type and what constrains it, nested as deep as the
// schema goes; a schema met again inside itself is named, not drawn again. `named`: the
// name of a schema of the components is shown (a field's type says it already).
function schemaView(spec, schema, seen = new Set(), named = true) {
  if (!schema) return null;
  if (schema.$ref) {
    const target = resolve(spec, schema.$ref);
    const name = refName(schema.$ref);
    if (target === undefined) {
      return el("span", { class: "missing", text: `${name} (not in the document)` });
    }
    if (seen.has(schema.$ref)) return el("span", { class: "ref", text: `${name} (as above)` });
    return el("div", { class: "schema", "data-schema": name },
      named ? el("span", { class: "ref", text: name }) : null,
      schemaView(spec, target, new Set([...seen, schema.$ref]), named));
  }
  const parts = [];
  if (schema.description) parts.push(el("p", { class: "description", text: schema.description }));
  if (schema.properties) {
    const required = new Set(schema.required ?? []);
    parts.push(el("ul", { class: "fields" }, Object.entries(schema.properties).map(
      ([name, field]) => el("li", { "data-field": name },
        el("code", { class: "name", text: name }), " ",
        el("span", { class: "type", text: typeOf(field) }),
        required.has(name) ? el("span", { class: "required", text: "required" }) : null,
        constraints(field),
        field.description ? el("span", { class: "description", text: field.description }) : null,
        nested(spec, field, seen)))));
    if (schema.additionalProperties === false) {
      parts.push(el("p", { class: "closed", text: "no other fields" }));
    }
  } else {
    parts.push(el("span", { class: "type", text: typeOf(schema) }), constraints(schema),
      nested(spec, schema, seen));
  }
  return el("div", { class: "schema" }, parts);
}

// What a field holds inside it: an object's fields, an array's items, the choices.
function nested(spec, schema, seen) {
  if (schema.$ref) return schemaView(spec, schema, seen, false);
  if (orNull(schema)) return nested(spec, orNull(schema), seen);
  if (schema.properties) {
    return schemaView(spec, { ...schema, description: undefined }, seen, false);
  }
  if (schema.type === "array" && schema.items && (schema.items.$ref || schema.items.properties)) {
    return schemaView(spec, schema.items, seen, false);
  }
  const choices = schema.oneOf ?? schema.anyOf ?? schema.allOf;
  if (choices) return el("ol", { class: "choices" }, choices.map((choice) =>
    el("li", {}, el("span", { class: "type", text: typeOf(choice) }), nested(spec, choice, seen))));
  const values = schema.additionalProperties;
  if (values && typeof values === "object" && (values.$ref || values.properties)) {
    return schemaView(spec, values, seen, false);
  }
  return null;
}

// -- one operation ---------------------------------------------------------------------
function parametersView(spec, parameters) {
  if (!parameters.length) return null;
  return el("section", { class: "parameters" }, el("h3", { text: "Parameters" }),
    el("table", {}, el("thead", {}, el("tr", {}, ["name", "in", "type", ""].map(
      (heading) => el("th", { text: heading })))),
    el("tbody", {}, parameters.map((given) => {
      const parameter = given.$ref ? resolve(spec, given.$ref) ?? given : given;
      return el("tr", { "data-parameter": parameter.name },
        el("td", {}, el("code", { text: parameter.name }),
          parameter.required ? el("span", { class: "required", text: "required" }) : null),
        el("td", { text: parameter.in }),
        el("td", { text: typeOf(parameter.schema) }),
        el("td", {}, constraints(parameter.schema),
          parameter.description ? el("span", { class: "description", text: parameter.description })
            : null));
    }))));
}

function contentView(spec, content) {
  return Object.entries(content ?? {}).map(([mediaType, media]) =>
    el("div", { class: "media", "data-media-type": mediaType },
      el("code", { class: "media-type", text: mediaType }), schemaView(spec, media.schema)));
}

function requestView(spec, body) {
  if (!body) return null;
  return el("section", { class: "request" }, el("h3", { text: "Request body" }),
    body.required ? el("span", { class: "required", text: "required" }) : null,
    body.description ? el("p", { text: body.description }) : null,
    contentView(spec, body.content));
}

function responsesView(spec, responses) {
  const codes = Object.keys(responses ?? {}).sort();
  return el("section", { class: "responses" }, el("h3", { text: "Answers" }),
    el("ul", {}, codes.map((code) => {
      const response = responses[code];
      const headers = Object.entries(response.headers ?? {});
      return el("li", { "data-status": code, class: code.startsWith("2") ? "success" : "failure" },
        el("strong", { class: "status", text: code }), " ",
        el("span", { text: response.description }),
        headers.length ? el("ul", { class: "headers" }, headers.map(([name, header]) =>
          el("li", {}, el("code", { text: name }), " ", el("span", { class: "type",
            text: typeOf(header.schema) }), header.description ? ` ${header.description}` : "")))
          : null,
        contentView(spec, response.content));
    })));
}

function operationView(spec, path, method, operation, shared) {
  const id = operation.operationId ?? `${method}-${path}`;
  const secured = (operation.security ?? spec.security ?? []).length > 0;
  return el("details", { class: "operation", id, "data-method": method, "data-path": path },
    el("summary", {},
      el("span", { class: `method ${method}`, text: method.toUpperCase() }),
      el("code", { class: "path", text: path }),
      el("span", { class: "summary", text: operation.summary ?? "" }),
      el("span", { class: secured ? "access token" : "access public",
        text: secured ? "token" : "public" })),
    el("div", { class: "body" },
      (operation.description ?? "").split("\n\n").filter(Boolean)
        .map((paragraph) => el("p", { class: "description", text: paragraph })),
      el("p", { class: "operation-id" }, "operationId ", el("code", { text: id })),
      operation.deprecated ? el("p", { class: "deprecated", text: "deprecated" }) : null,
      parametersView(spec, [...shared, ...(operation.parameters ?? [])]),
      requestView(spec, operation.requestBody),
      responsesView(spec, operation.responses)));
}

// -- the page ----------------------------------------------------------------------------
function operationsOf(spec) {
  return Object.entries(spec.paths ?? {}).flatMap(([path, item]) => METHODS
    .filter((method) => item[method])
    .map((method) => operationView(spec, path, method, item[method], item.parameters ?? [])));
}

function filter(operations, words) {
  const wanted = words.trim().toLowerCase();
  let shown = 0;
  for (const operation of operations) {
    const text = operation.querySelector("summary").textContent.toLowerCase();
    operation.hidden = wanted !== "" && !text.includes(wanted);
    if (!operation.hidden) shown += 1;
  }
  document.getElementById("shown").textContent = `${shown} of ${operations.length} operations`;
}

// A link to one operation (#operationId) opens it.
function openLinked() {
  const linked = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (location.hash && linked?.classList.contains("operation")) {
    linked.open = true;
    linked.scrollIntoView();
  }
}

function draw(openapi) {
  const title = openapi.info?.title ?? "API";
  document.title = `${title} API`;
  document.getElementById("title").textContent = title;
  document.getElementById("version").textContent =
    `version ${openapi.info?.version ?? "?"}, OpenAPI ${openapi.openapi ?? "?"}`;
  const operations = operationsOf(openapi);
  document.getElementById("operations").replaceChildren(...operations);
  const form = document.getElementById("filter");
  form.hidden = false;
  form.addEventListener("submit", (event) => event.preventDefault());
  form.elements.find.addEventListener("input", (event) => filter(operations, event.target.value));
  const openAll = (open) => operations.filter((op) => !op.hidden)
    .forEach((op) => { op.open = open; });
  document.getElementById("open-all").addEventListener("click", () => openAll(true));
  document.getElementById("close-all").addEventListener("click", () => openAll(false));
  filter(operations, "");
  openLinked();
  window.addEventListener("hashchange", openLinked);
  document.body.dataset.operations = String(operations.length);
}

function fail(message) {
  const notice = document.getElementById("notice");
  notice.textContent = message;
  notice.hidden = false;
  document.body.dataset.failed = "true";
}

async function load() {
  let response;
  try {
    response = await fetch("openapi.json", { headers: { Accept: "application/json" } });
  } catch (error) {
    fail(`The OpenAPI document could not be fetched: ${error.message}`);
    return;
  }
  if (!response.ok) {
    fail(`The OpenAPI document could not be fetched: ${response.status} ${response.statusText}`);
    return;
  }
  draw(await response.json());
}

load();
