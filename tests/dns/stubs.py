#!/usr/bin/env python3
"""Local stubs of the Cloudflare API v4 and Amazon Route 53 APIs for the DNS provider tests.

Each stub is a real HTTP server on 127.0.0.1 (an ephemeral port, in a thread of the test) that
CHECKS every request against the provider's documented shape and records a violation — answering
400, which the test then reports — on any mismatch:

  Cloudflare (developers.cloudflare.com/api, "DNS Records for a Zone"; lab-recipes §3.3):
    Authorization: Bearer <token>; GET .../zones/{zone_id}/dns_records with known query
    parameters only and an absolute name without the trailing dot; POST / PATCH
    .../dns_records[/{id}] with Content-Type: application/json and a record body whose fields
    are known and valid: type A/AAAA/TXT, name without trailing dot inside the zone, content an
    address of the type or quoted TXT character-strings, ttl 1 or 60..86400, proxied a boolean
    (never true on TXT).
  Route 53 (docs.aws.amazon.com/Route53/latest/APIReference; lab-recipes §3.4):
    every request signed with AWS Signature Version 4 — the signature is recomputed here with
    hashlib/hmac from the documented algorithm (canonical request, string to sign, signing key)
    and compared; X-Amz-Date in YYYYMMDD'T'HHMMSS'Z' form and within 15 minutes; the credential
    scope (key id, date, region, "route53", "aws4_request"); host, x-amz-date, content-type (with
    a body) and x-amz-security-token (with temporary credentials) among the signed headers;
    ListResourceRecordSets' known query parameters; ChangeResourceRecordSets' XML (namespace,
    ChangeBatch/Changes/Change/{Action, ResourceRecordSet/{Name,Type,TTL,ResourceRecords}}),
    Content-Type text/xml; GetChange's path.

They keep the zone's records and apply writes with the documented semantics (Route53: a batch is
all or nothing, a DELETE must match name, type, TTL and values exactly, a CREATE must not find the
record; ListResourceRecordSets sorted by reversed-label name then type, paged), and replay the
documented answers and errors on request (`inject`): Cloudflare success envelopes, 429 with
Retry-After, authentication errors 10000 / 9109, 5xx; Route53 ChangeInfo PENDING then INSYNC,
Throttling, PriorRequestNotComplete, InvalidChangeBatch, ExpiredToken, SignatureDoesNotMatch,
NoSuchHostedZone. Python 3 standard library only.
"""

import datetime
import hashlib
import hmac
import http.server
import ipaddress
import json
import re
import secrets
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

R53_NS = "https://route53.amazonaws.com/doc/2013-04-01/"
TXT_RE = re.compile(r'^"(?:[^"\\]|\\.)*"(?: "(?:[^"\\]|\\.)*")*$')


class Violation(Exception):
    pass


def require(cond, what):
    if not cond:
        raise Violation(what)


class Answer:
    def __init__(self, status, body=b"", headers=None, delay_s=0.0):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.headers = headers or {}
        self.delay_s = delay_s


class Stub:
    """The server, the violation log, the request log and the injected answers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.violations = []
        self.log = []          # (method, path, query) of every request, in order
        self.injected = []     # [(predicate(method, path), Answer)], first match used once
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                stub._serve(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def inject(self, method, path_re, answer):
        with self.lock:
            self.injected.append((method, re.compile(path_re), answer))

    def take_violations(self):
        with self.lock:
            v, self.violations = self.violations, []
            return v

    def requests(self, method=None):
        with self.lock:
            return [r for r in self.log if method is None or r[0] == method]

    def clear_log(self):
        with self.lock:
            self.log = []

    def _injected(self, method, path):
        with self.lock:
            for i, (m, rx, answer) in enumerate(self.injected):
                if m == method and rx.search(path):
                    del self.injected[i]
                    return answer
        return None

    def _serve(self, h):
        method = h.command
        raw_path, _, raw_query = h.path.partition("?")
        try:
            require("chunked" not in h.headers.get("Transfer-Encoding", ""),
                    "chunked request body")
            length = int(h.headers.get("Content-Length", "0"))
            body = h.rfile.read(length) if length > 0 else b""
        except (ValueError, Violation) as e:
            self._violation(h, method, raw_path, str(e))
            return
        with self.lock:
            self.log.append((method, raw_path, raw_query))
        try:
            answer = self.check_and_handle(method, raw_path, raw_query, h.headers, body)
        except Violation as e:
            self._violation(h, method, raw_path, str(e))
            return
        self._send(h, answer)

    def _violation(self, h, method, path, what):
        with self.lock:
            self.violations.append("%s %s: %s" % (method, path, what))
        self._send(h, Answer(400, "stub: request violates the documented shape: %s\n" % what))

    @staticmethod
    def _send(h, answer):
        if answer.delay_s > 0:
            time.sleep(answer.delay_s)  # the server is slow on purpose (a timeout scenario)
        try:
            h.send_response(answer.status)
            for k, v in answer.headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(answer.body)))
            h.end_headers()
            h.wfile.write(answer.body)
        except OSError:
            pass  # the client gave up (timeout scenario)

    def check_and_handle(self, method, path, query, headers, body):
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Cloudflare API v4
# ---------------------------------------------------------------------------------------------

def cf_envelope(result=None, success=True, errors=(), result_info=None):
    doc = {"success": success, "errors": [{"code": c, "message": m} for c, m in errors],
           "messages": [], "result": result}
    if result_info is not None:
        doc["result_info"] = result_info
    return json.dumps(doc)


def cf_error(status, code, message, headers=None):
    hs = {"Content-Type": "application/json"}
    hs.update(headers or {})
    return Answer(status, cf_envelope(None, False, [(code, message)]), hs)


CF_AUTH_ERROR = (403, 10000, "Authentication error")        # documented, HTTP 403
CF_INVALID_TOKEN = (403, 9109, "Invalid access token")      # expired / revoked token
CF_LIST_PARAMS = {"name", "type", "content", "per_page", "page", "match", "order", "direction"}
CF_RECORD_FIELDS = {"type", "name", "content", "ttl", "proxied", "comment", "tags"}


class CloudflareStub(Stub):
    BASE = "/client/v4"

    def __init__(self, zone_id, zone_name, token):
        super().__init__()
        self.zone_id = zone_id
        self.zone_name = zone_name.rstrip(".")
        self.token = token
        self.records = {}   # id -> record dict
        self.api_url = "http://127.0.0.1:%d%s" % (self.port, self.BASE)

    # ---- shape checks ----

    def _check_name(self, name):
        require(isinstance(name, str) and name, "name missing")
        require(not name.endswith("."), "name %r has a trailing dot (Cloudflare names have none)"
                % name)
        require(name == self.zone_name or name.endswith("." + self.zone_name),
                "name %r outside the zone %r" % (name, self.zone_name))

    def _check_record(self, rec, create):
        require(isinstance(rec, dict), "body is not a JSON object")
        unknown = set(rec) - CF_RECORD_FIELDS
        require(not unknown, "unknown record fields %s" % sorted(unknown))
        if create:
            for k in ("type", "name", "content", "ttl"):
                require(k in rec, "record field %r missing" % k)
        rtype = rec.get("type")
        if "type" in rec:
            require(rtype in ("A", "AAAA", "TXT"), "type %r" % rtype)
        if "name" in rec:
            self._check_name(rec["name"])
        if "content" in rec:
            c = rec["content"]
            require(isinstance(c, str), "content is not a string")
            if rtype == "A":
                require(isinstance(ipaddress.ip_address(c), ipaddress.IPv4Address),
                        "A content %r" % c)
            elif rtype == "AAAA":
                require(isinstance(ipaddress.ip_address(c), ipaddress.IPv6Address),
                        "AAAA content %r" % c)
            elif rtype == "TXT":
                require(TXT_RE.match(c), "TXT content %r is not quoted character-strings" % c)
        if "ttl" in rec:
            t = rec["ttl"]
            require(isinstance(t, int) and not isinstance(t, bool) and
                    (t == 1 or 60 <= t <= 86400), "ttl %r (1 or 60..86400)" % t)
        if "proxied" in rec:
            require(isinstance(rec["proxied"], bool), "proxied is not a boolean")
            require(not (rtype == "TXT" and rec["proxied"]), "a TXT record cannot be proxied")

    def check_and_handle(self, method, path, query, headers, body):
        auth = headers.get("Authorization", "")
        require(re.match(r"^Bearer [^\s]+$", auth), "Authorization is not 'Bearer <token>'")
        prefix = "%s/zones/%s/dns_records" % (self.BASE, self.zone_id)
        require(path == prefix or path.startswith(prefix + "/"),
                "unknown path (expected %s[/id])" % prefix)
        rec_id = path[len(prefix) + 1:] if path != prefix else None
        if method == "GET":
            require(rec_id is None, "GET of one record is not used")
            params = self._check_list_query(query)
        elif method == "POST":
            require(rec_id is None and not query, "POST goes to .../dns_records")
        elif method == "PATCH":
            require(rec_id and re.match(r"^[0-9a-f]{32}$", rec_id), "PATCH needs a record id")
        else:
            raise Violation("method %s not expected" % method)
        doc = None
        if method in ("POST", "PATCH"):
            require(headers.get("Content-Type", "").startswith("application/json"),
                    "Content-Type is not application/json")
            try:
                doc = json.loads(body)
            except ValueError:
                raise Violation("body is not JSON")
            self._check_record(doc, create=method == "POST")
        answer = self._injected(method, path)
        if answer is not None:
            return answer
        if auth != "Bearer " + self.token:
            return cf_error(*CF_INVALID_TOKEN)
        with self.lock:
            if method == "GET":
                return self._list(params)
            if method == "POST":
                return self._create(doc)
            return self._patch(rec_id, doc)

    def _check_list_query(self, query):
        params = urllib.parse.parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
        unknown = set(params) - CF_LIST_PARAMS
        require(not unknown, "unknown list parameters %s" % sorted(unknown))
        for k, v in params.items():
            require(len(v) == 1, "parameter %s repeated" % k)
        require("name" in params, "the list is not filtered by name")
        self._check_name(params["name"][0])
        if "type" in params:
            require(params["type"][0] in ("A", "AAAA", "TXT"), "type filter %r" % params["type"])
        if "per_page" in params:
            require(params["per_page"][0].isdigit() and 5 <= int(params["per_page"][0]) <= 5000000,
                    "per_page %r" % params["per_page"])
        return {k: v[0] for k, v in params.items()}

    # ---- semantics ----

    def _list(self, params):
        found = [r for r in self.records.values()
                 if r["name"].lower() == params["name"].lower() and
                 ("type" not in params or r["type"] == params["type"])]
        per_page = int(params.get("per_page", "100"))
        info = {"page": 1, "per_page": per_page, "count": len(found), "total_count": len(found),
                "total_pages": 1}
        return Answer(200, cf_envelope(found[:per_page], result_info=info),
                      {"Content-Type": "application/json"})

    def add(self, rtype, name, content, ttl, proxied=False):
        rid = secrets.token_hex(16)
        now = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.records[rid] = {"id": rid, "zone_id": self.zone_id, "zone_name": self.zone_name,
                             "type": rtype, "name": name, "content": content, "ttl": ttl,
                             "proxied": proxied, "proxiable": rtype != "TXT", "locked": False,
                             "created_on": now, "modified_on": now, "meta": {}}
        return self.records[rid]

    def _create(self, doc):
        rec = self.add(doc["type"], doc["name"], doc["content"], doc["ttl"],
                       doc.get("proxied", False))
        return Answer(200, cf_envelope(rec), {"Content-Type": "application/json"})

    def _patch(self, rec_id, doc):
        rec = self.records.get(rec_id)
        if rec is None:
            return cf_error(404, 81044, "Record does not exist.")
        rec.update({k: v for k, v in doc.items() if k in ("type", "name", "content", "ttl",
                                                          "proxied")})
        rec["modified_on"] = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return Answer(200, cf_envelope(rec), {"Content-Type": "application/json"})

    def state(self, name):
        """{type: [content, ...]} at name (no trailing dot), and the TTLs."""
        with self.lock:
            out = {}
            for r in self.records.values():
                if r["name"] == name:
                    out.setdefault(r["type"], []).append((r["content"], r["ttl"]))
            return out


# ---------------------------------------------------------------------------------------------
# Amazon Route 53
# ---------------------------------------------------------------------------------------------

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"


def aws_encode(s, keep_slash):
    out = []
    for b in s.encode():
        ch = chr(b)
        if ch in UNRESERVED or (keep_slash and ch == "/"):
            out.append(ch)
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def canonical_uri(path):
    """Non-S3 rules: dot segments removed, empty segments collapsed, then every byte outside the
    unreserved set and '/' percent-encoded — the path as sent is encoded again ("%2F" → "%252F")."""
    segs = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if segs:
                segs.pop()
            continue
        segs.append(seg)
    norm = "/" + "/".join(segs)
    if path.endswith("/") and norm != "/":
        norm += "/"
    return aws_encode(norm, keep_slash=True)


def canonical_query(query):
    pairs = []
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        pairs.append((aws_encode(urllib.parse.unquote(name), False),
                      aws_encode(urllib.parse.unquote(value), False)))
    return "&".join("%s=%s" % p for p in sorted(pairs))


def sigv4_signature(secret, region, service, amz_date, method, path, query, signed_headers,
                    header_values, body):
    """The documented algorithm: canonical request → string to sign → signing key → signature."""
    canon_headers = "".join("%s:%s\n" % (h, header_values[h]) for h in signed_headers)
    canonical = "\n".join([method, canonical_uri(path), canonical_query(query), canon_headers,
                           ";".join(signed_headers), hashlib.sha256(body).hexdigest()])
    scope = "%s/%s/%s/aws4_request" % (amz_date[:8], region, service)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(canonical.encode()).hexdigest()])

    def mac(key, msg):
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    key = mac(mac(mac(mac(("AWS4" + secret).encode(), amz_date[:8]), region), service),
              "aws4_request")
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/"
                     r"aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


def r53_error(status, code, message, type_="Sender"):
    return Answer(status,
                  '<?xml version="1.0"?>\n<ErrorResponse xmlns="%s"><Error><Type>%s</Type>'
                  "<Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId>"
                  "</ErrorResponse>" % (R53_NS, type_, code, xml_escape(message),
                                        secrets.token_hex(16)),
                  {"Content-Type": "text/xml"})


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


R53_THROTTLING = (400, "Throttling", "Rate exceeded")
R53_PRIOR = (400, "PriorRequestNotComplete",
             "The request was rejected because Route 53 was still processing a prior request.")
R53_EXPIRED = (403, "ExpiredToken", "The security token included in the request is expired")
R53_SIGNATURE = (403, "SignatureDoesNotMatch",
                 "The request signature we calculated does not match the signature you provided.")


def reversed_name(name):
    labels = [l for l in name.lower().rstrip(".").split(".") if l]
    return ".".join(reversed(labels)) + "."


class Route53Stub(Stub):
    def __init__(self, zone_id, zone_name, access_key, secret, region="us-east-1",
                 session_token=None):
        super().__init__()
        self.zone_id = zone_id
        self.zone_name = zone_name.lower()
        self.access_key = access_key
        self.secret = secret
        self.region = region
        self.session_token = session_token
        self.records = {}        # (name lower with dot, type) -> {"ttl": int, "values": [str]}
        self.changes = {}        # change id -> polls left before INSYNC
        self.batches = []        # [[(action, name, type, ttl, [values])]]
        self.pending_polls = 1   # GetChange answers PENDING this many times, then INSYNC
        self.page_cap = 300      # at most this many record sets per list page
        self.icb_form = "ErrorResponse"  # or "InvalidChangeBatch": the other documented form
        self.expect_bad_signature = False
        self.endpoint = "http://127.0.0.1:%d" % self.port

    # ---- SigV4 ----

    def _check_signature(self, method, path, query, headers, body):
        amz_date = headers.get("X-Amz-Date", "")
        require(re.match(r"^\d{8}T\d{6}Z$", amz_date), "X-Amz-Date %r is not YYYYMMDDTHHMMSSZ"
                % amz_date)
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
        skew = abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())
        require(skew < 15 * 60, "X-Amz-Date is %d s away from now" % skew)
        m = AUTH_RE.match(headers.get("Authorization", ""))
        require(m, "Authorization is not AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., "
                   "Signature=...")
        akid, date, region, service, signed, signature = m.groups()
        require(akid == self.access_key, "access key id %r" % akid)
        require(date == amz_date[:8], "credential date %s is not X-Amz-Date's" % date)
        require(region == self.region, "signing region %r (expected %r)" % (region, self.region))
        require(service == "route53", "signing service %r" % service)
        names = signed.split(";")
        require(names == sorted(names) and len(set(names)) == len(names),
                "SignedHeaders not sorted and unique")
        require("host" in names and "x-amz-date" in names, "host and x-amz-date must be signed")
        require(headers.get("Host") == "127.0.0.1:%d" % self.port, "Host %r" % headers.get("Host"))
        if body:
            require("content-type" in names, "Content-Type must be signed with a body")
        token = headers.get("X-Amz-Security-Token")
        if self.session_token is not None:
            require(token is not None, "X-Amz-Security-Token missing (temporary credentials)")
        if token is not None:
            require("x-amz-security-token" in names, "X-Amz-Security-Token is not signed")
        values = {}
        for h in names:
            got = headers.get_all(h)
            require(got, "signed header %s not sent" % h)
            values[h] = ",".join(" ".join(v.split()) for v in got)
        want = sigv4_signature(self.secret, region, service, amz_date, method, path, query,
                               names, values, body)
        if not hmac.compare_digest(want, signature):
            if self.expect_bad_signature:
                return r53_error(*R53_SIGNATURE)
            raise Violation("SigV4 signature does not match the one recomputed here")
        return None

    # ---- routes ----

    def check_and_handle(self, method, path, query, headers, body):
        refused = self._check_signature(method, path, query, headers, body)
        if refused is not None:
            return refused
        zone_prefix = "/2013-04-01/hostedzone/"
        if method == "GET" and re.match(r"^/2013-04-01/hostedzone/[^/]+/rrset$", path):
            params = self._check_list_query(query)
            kind = "list"
        elif method == "POST" and re.match(r"^/2013-04-01/hostedzone/[^/]+/rrset/$", path):
            require(not query, "ChangeResourceRecordSets takes no query")
            ctype = headers.get("Content-Type", "")
            require(ctype.split(";")[0].strip() in ("text/xml", "application/xml"),
                    "Content-Type %r is not an XML type" % ctype)
            batch = self._parse_batch(body)
            kind = "change"
        elif method == "GET" and re.match(r"^/2013-04-01/change/[A-Za-z0-9]+$", path):
            require(not query, "GetChange takes no query")
            kind = "getchange"
        else:
            raise Violation("unknown route (method and path)")
        answer = self._injected(method, path)
        if answer is not None:
            return answer
        if self.session_token is not None and \
                headers.get("X-Amz-Security-Token") != self.session_token:
            return r53_error(*R53_EXPIRED)
        if kind != "getchange" and path[len(zone_prefix):].split("/")[0] != self.zone_id:
            return r53_error(404, "NoSuchHostedZone", "No hosted zone found with ID: %s"
                             % path[len(zone_prefix):].split("/")[0])
        with self.lock:
            if kind == "list":
                return self._list(params)
            if kind == "change":
                return self._change(batch)
            return self._get_change(path.rsplit("/", 1)[1])

    def _check_list_query(self, query):
        params = urllib.parse.parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
        unknown = set(params) - {"name", "type", "identifier", "maxitems"}
        require(not unknown, "unknown ListResourceRecordSets parameters %s" % sorted(unknown))
        for k, v in params.items():
            require(len(v) == 1, "parameter %s repeated" % k)
        p = {k: v[0] for k, v in params.items()}
        require(not ("type" in p and "name" not in p), "type without name (InvalidInput)")
        if "maxitems" in p:
            require(p["maxitems"].isdigit() and 1 <= int(p["maxitems"]) <= 300,
                    "maxitems %r" % p["maxitems"])
        if "type" in p:
            require(p["type"] in ("SOA", "A", "TXT", "NS", "CNAME", "MX", "NAPTR", "PTR", "SRV",
                                  "SPF", "AAAA", "CAA", "DS"), "type %r" % p["type"])
        return p

    def _parse_batch(self, body):
        try:
            root = ET.fromstring(body)
        except ET.ParseError as e:
            raise Violation("body is not XML: %s" % e)
        q = "{%s}" % R53_NS
        require(root.tag == q + "ChangeResourceRecordSetsRequest",
                "root element %r (namespace %s)" % (root.tag, R53_NS))
        require([c.tag for c in root] == [q + "ChangeBatch"], "exactly one ChangeBatch")
        cb = root[0]
        tags = [c.tag for c in cb]
        require(tags in ([q + "Changes"], [q + "Comment", q + "Changes"]),
                "ChangeBatch holds %s" % tags)
        changes = cb.find(q + "Changes")
        require(len(changes) >= 1, "no Change")
        out = []
        for ch in changes:
            require(ch.tag == q + "Change", "Changes holds %s" % ch.tag)
            require([c.tag for c in ch] == [q + "Action", q + "ResourceRecordSet"],
                    "Change is Action, ResourceRecordSet")
            action = ch[0].text
            require(action in ("CREATE", "DELETE", "UPSERT"), "Action %r" % action)
            rrs = ch[1]
            require([c.tag for c in rrs] == [q + "Name", q + "Type", q + "TTL",
                                             q + "ResourceRecords"],
                    "ResourceRecordSet is Name, Type, TTL, ResourceRecords")
            name, rtype, ttl = rrs[0].text or "", rrs[1].text or "", rrs[2].text or ""
            require(rtype in ("A", "AAAA", "TXT"), "Type %r" % rtype)
            require(ttl.isdigit() and int(ttl) <= 2147483647, "TTL %r" % ttl)
            require(name.lower().rstrip(".") == self.zone_name.rstrip(".") or
                    name.lower().endswith("." + self.zone_name), "Name %r outside the zone" % name)
            values = []
            for rr in rrs[3]:
                require(rr.tag == q + "ResourceRecord" and [c.tag for c in rr] == [q + "Value"],
                        "ResourceRecord holds one Value")
                v = rr[0].text or ""
                if rtype == "TXT":
                    require(TXT_RE.match(v), "TXT Value %r is not quoted" % v)
                else:
                    addr = ipaddress.ip_address(v)
                    require(addr.version == (4 if rtype == "A" else 6), "%s Value %r" % (rtype, v))
                values.append(v)
            require(values, "no ResourceRecord")
            out.append((action, name, rtype, int(ttl), values))
        return out

    # ---- semantics ----

    def put(self, name, rtype, ttl, values):
        with self.lock:
            self.records[(name.lower(), rtype)] = {"ttl": ttl, "values": list(values)}

    def _sorted(self):
        return sorted(self.records.items(), key=lambda kv: (reversed_name(kv[0][0]), kv[0][1]))

    def _list(self, p):
        items = self._sorted()
        if "name" in p:
            start = (reversed_name(p["name"]), p.get("type", ""))
            items = [kv for kv in items if (reversed_name(kv[0][0]), kv[0][1]) >= start]
        maxitems = int(p.get("maxitems", "300"))
        page = items[:min(maxitems, self.page_cap)]
        rest = items[len(page):]
        sets = "".join(
            "<ResourceRecordSet><Name>%s</Name><Type>%s</Type><TTL>%d</TTL><ResourceRecords>%s"
            "</ResourceRecords></ResourceRecordSet>"
            % (xml_escape(n), t, rec["ttl"],
               "".join("<ResourceRecord><Value>%s</Value></ResourceRecord>" % xml_escape(v)
                       for v in rec["values"]))
            for (n, t), rec in page)
        more = ""
        if rest:
            more = "<NextRecordName>%s</NextRecordName><NextRecordType>%s</NextRecordType>" % (
                xml_escape(rest[0][0][0]), rest[0][0][1])
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<ListResourceRecordSetsResponse '
                'xmlns="%s"><ResourceRecordSets>%s</ResourceRecordSets><IsTruncated>%s'
                "</IsTruncated>%s<MaxItems>%d</MaxItems></ListResourceRecordSetsResponse>"
                % (R53_NS, sets, "true" if rest else "false", more, maxitems))
        return Answer(200, body, {"Content-Type": "text/xml"})

    def _invalid_batch(self, message):
        if self.icb_form == "InvalidChangeBatch":
            return Answer(400, '<?xml version="1.0"?>\n<InvalidChangeBatch xmlns="%s"><Messages>'
                               "<Message>%s</Message></Messages><RequestId>%s</RequestId>"
                               "</InvalidChangeBatch>" % (R53_NS, xml_escape(message),
                                                          secrets.token_hex(16)),
                          {"Content-Type": "text/xml"})
        return r53_error(400, "InvalidChangeBatch", message)

    def _change(self, batch):
        work = {k: dict(v) for k, v in self.records.items()}
        for action, name, rtype, ttl, values in batch:
            key = (name.lower() if name.endswith(".") else name.lower() + ".", rtype)
            cur = work.get(key)
            desc = "[name='%s', type='%s']" % (key[0], rtype)
            if action == "DELETE":
                if cur is None:
                    return self._invalid_batch("Tried to delete resource record set %s but it "
                                               "was not found" % desc)
                if cur["ttl"] != ttl or sorted(cur["values"]) != sorted(values):
                    return self._invalid_batch("Tried to delete resource record set %s but the "
                                               "values provided do not match the current values"
                                               % desc)
                del work[key]
            elif action == "CREATE":
                if cur is not None:
                    return self._invalid_batch("Tried to create resource record set %s but it "
                                               "already exists" % desc)
                work[key] = {"ttl": ttl, "values": list(values)}
            else:
                work[key] = {"ttl": ttl, "values": list(values)}
        self.records = work
        self.batches.append(batch)
        cid = "C" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                            for _ in range(13))
        self.changes[cid] = self.pending_polls
        return self._change_info("ChangeResourceRecordSetsResponse", cid,
                                 "PENDING" if self.pending_polls > 0 else "INSYNC")

    def _change_info(self, root, cid, status):
        now = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return Answer(200, '<?xml version="1.0" encoding="UTF-8"?>\n<%s xmlns="%s"><ChangeInfo>'
                           "<Id>/change/%s</Id><Status>%s</Status><SubmittedAt>%s</SubmittedAt>"
                           "</ChangeInfo></%s>" % (root, R53_NS, cid, status, now, root),
                      {"Content-Type": "text/xml"})

    def _get_change(self, cid):
        if cid not in self.changes:
            return r53_error(404, "NoSuchChange", "A change with the specified change ID does "
                                                  "not exist.")
        left = self.changes[cid]
        self.changes[cid] = max(0, left - 1)
        return self._change_info("GetChangeResponse", cid, "PENDING" if left > 0 else "INSYNC")

    def state(self, name):
        with self.lock:
            return {t: (r["ttl"], list(r["values"])) for (n, t), r in self.records.items()
                    if n == name.lower()}
