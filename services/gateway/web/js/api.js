// REST client for the gateway's public /v1 API.
//
// Why fetch everywhere (even for images and the SSE stream): when the deployment sets
// GDGAN_API_TOKEN every /v1 request needs an `Authorization: Bearer` header, and neither
// <img src> nor EventSource can send one. So images are fetched as blobs and the event
// stream is read from a fetch() body.

const TOKEN_KEY = "gdgan.apiToken";

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the token only lives in the field */
  }
}

/** An API failure with a message meant for people, not for developers. */
export class ApiError extends Error {
  constructor(status, message, { retryAfter = null, field = null, raw = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.retryAfter = retryAfter;
    this.field = field;
    this.raw = raw;
  }
}

function fieldName(loc) {
  // FastAPI locations look like ["body", "n"], ["body", "phantom", "n"] (a tagged union) or
  // ["body", "strategies", 0]; people want the field's own name: the last non-index part.
  if (!Array.isArray(loc)) return loc ? String(loc) : "";
  const parts = loc.filter((p, i) => !(i === 0 && ["body", "query", "path", "header"].includes(p)));
  const named = parts.filter((p) => typeof p === "string" && !/^\d+$/.test(p));
  return named.length ? named[named.length - 1] : parts.join(".");
}

function detailText(body) {
  if (body == null) return "";
  if (typeof body === "string") return body;
  const d = body.detail ?? body.error ?? body.message;
  if (typeof d === "string") return d;
  if (d && typeof d === "object" && !Array.isArray(d)) return d.message || d.msg || JSON.stringify(d);
  return "";
}

/** Turn a failed response into one plain sentence (and the field it is about, if any). */
export function describeError(status, body, retryAfter) {
  const text = detailText(body);
  switch (status) {
    case 401: {
      const has = !!getToken();
      return {
        message: has
          ? `The API did not accept the token (${status}). Check the “API token” field at the top of the page.`
          : `This API needs a token (${status}): enter it in the “API token” field at the top of the page and try again.`,
        field: "token",
      };
    }
    case 403:
      // a valid token without the right: the server names the missing scope (or the job's owner)
      return { message: `This token may not do that (403)${text ? ": " + text : ""}.`, field: "token" };
    case 404:
      return { message: text ? `Not found: ${text}` : "Not found (404)." };
    case 409:
      return { message: text || "That is not possible in the job's current state (409)." };
    case 413:
      return { message: text || "The request is too large (413)." };
    case 422: {
      const list = body && Array.isArray(body.detail) ? body.detail : null;
      if (list && list.length) {
        const parts = list.map((e) => {
          const f = fieldName(e.loc);
          const msg = (e.msg || "invalid value").replace(/^Value error, /, "");
          return f ? `“${f}”: ${msg}` : msg;
        });
        return {
          message: `Please check ${list.length > 1 ? "these fields" : "the field"} — ${parts.join("; ")}.`,
          field: fieldName(list[0].loc).split(".")[0] || null,
        };
      }
      const field = body && (body.field || (body.detail && body.detail.field));
      return { message: `Invalid request (422): ${text || "a value was not accepted"}.`, field: field || null };
    }
    case 429: {
      const wait = retryAfter ? ` Try again in ${retryAfter} s.` : " Try again later.";
      return { message: `This token's quota is used up for now (429).${text ? " " + text + "." : ""}${wait}` };
    }
    case 503: {
      const wait = retryAfter ? ` Try again in ${retryAfter} s.` : " Try again in a moment.";
      return { message: `The service is busy or not ready (${status}).${text ? " " + text + "." : ""}${wait}` };
    }
    default:
      if (status >= 500) return { message: `The server hit an error (${status}).${text ? " " + text : ""}` };
      return { message: text ? `Request failed (${status}): ${text}` : `Request failed (${status}).` };
  }
}

/**
 * fetch() a /v1 path with the token; throws ApiError with a readable message on failure.
 * Returns the Response (not yet read) on success.
 */
export async function request(path, { method = "GET", body, accept = "application/json", signal } = {}) {
  const headers = { Accept: accept };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, signal, cache: "no-store" });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "Could not reach the server. Is the gateway running? (network error)");
  }
  if (resp.ok) return resp;
  let parsed = null;
  const raw = await resp.text().catch(() => "");
  try {
    parsed = raw ? JSON.parse(raw) : null;
  } catch {
    parsed = raw;
  }
  const retryAfter = resp.headers.get("Retry-After");
  const { message, field } = describeError(resp.status, parsed, retryAfter);
  throw new ApiError(resp.status, message, { retryAfter, field, raw: parsed });
}

export async function getJson(path, opts = {}) {
  const resp = await request(path, opts);
  return resp.json();
}

export async function postJson(path, body, opts = {}) {
  const resp = await request(path, { ...opts, method: "POST", body });
  const text = await resp.text();
  return text ? JSON.parse(text) : {};
}

/** Fetch an image (or any binary) as an object URL, so protected resources work in <img>. */
export async function objectUrl(path, opts = {}) {
  const resp = await request(path, { ...opts, accept: "*/*" });
  const blob = await resp.blob();
  return URL.createObjectURL(blob);
}

/**
 * Read a server-sent-event stream: calls onEvent({event, data, id}) for each event, data parsed
 * as JSON when it is JSON. Resolves when the server closes the stream.
 */
export async function streamEvents(path, onEvent, { signal } = {}) {
  const resp = await request(path, { accept: "text/event-stream", signal });
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const flush = (block) => {
    let event = "message";
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const key = i < 0 ? line : line.slice(0, i);
      let val = i < 0 ? "" : line.slice(i + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (key === "event") event = val;
      else if (key === "data") data.push(val);
      else if (key === "id") id = val;
    }
    if (!data.length) return;
    const text = data.join("\n");
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* keep text */
    }
    onEvent({ event, data: parsed, id });
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      flush(buf.slice(0, cut));
      buf = buf.slice(cut + 2);
    }
  }
  if (buf.trim()) flush(buf);
}

/** Trigger a browser download of a Blob under a file name. */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}
