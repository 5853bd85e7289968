vcl 4.1;

# Template for one sandbox PoP: warming/sandbox/varnish.py fills the $$name fields.
# Observable behaviour is documented in warming/sandbox/edge.py; PyEdge mirrors it.

import purge;
import vsthrottle;
import xkey;

backend default {
    .host = "${backend_host}";
    .port = "${backend_port}";
}

acl purgers {
    "127.0.0.1";
}

sub vcl_recv {
    # Internal header, never taken from a client.
    unset req.http.X-Sandbox-Purged;

    if (req.url == "${health_path}") {
        return (synth(200, "OK"));
    }

    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
${purge_block}
    }

    # One bucket per PoP (constant key), so the limit models a CDN's per-PoP
    # allowance rather than a per-client one. 0 disables it.
    if (req.method == "GET" && ${throttle_rps} > 0
        && vsthrottle.is_denied("pop", ${throttle_rps}, 1s)) {
        return (synth(429, "Too Many Requests"));
    }
    # Everything else: the built-in vcl_recv (GET/HEAD are looked up by URL + Host).
}

sub vcl_purge {
    return (synth(200, "Purged"));
}

sub vcl_hit {
${hit_block}
}

sub vcl_miss {
${hit_block}
}

sub vcl_backend_response {
${backend_block}
}

sub vcl_deliver {
    # An upstream X-Cache (from a shield) is stored with the object; append our
    # verdict so the chain reads shield first, this edge last.
    if (obj.hits > 0) {
        set req.http.X-Sandbox-Cache = "HIT";
    } else {
        set req.http.X-Sandbox-Cache = "MISS";
    }
    if (resp.http.X-Cache) {
        set resp.http.X-Cache = resp.http.X-Cache + ", " + req.http.X-Sandbox-Cache;
    } else {
        set resp.http.X-Cache = req.http.X-Sandbox-Cache;
    }
    unset req.http.X-Sandbox-Cache;
    ${deliver_block}
}

sub vcl_synth {
    set resp.http.Content-Type = "text/plain; charset=utf-8";
    if (resp.status == 429) {
        set resp.http.Retry-After = "${retry_after_s}";
    }
    if (req.http.X-Sandbox-Purged) {
        set resp.http.X-Purged = req.http.X-Sandbox-Purged;
        synthetic("Purged " + req.http.X-Sandbox-Purged + {"
"});
        return (deliver);
    }
    synthetic(resp.reason + {"
"});
    return (deliver);
}
