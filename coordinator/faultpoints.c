/*
 * Named fault points (coordinator/faultpoints.h), compiled only into test builds
 * (-Dfault_points=true).
 *
 * The armed set is a file-local table rather than a field of struct afc_daemon: the points sit
 * deep in callbacks (a proposal's completion, a psql result) that should not grow a parameter for
 * the sake of tests, and the table exists only in test builds. Everything runs on the loop thread.
 */
#include <stdlib.h>
#include <string.h>

#include "afc/error.h"
#include "afc/log.h"
#include "coordinator/faultpoints.h"
#include "coordinator/http_internal.h"

static struct {
    const char *name;
    bool armed;
} points[] = {
    {"crash-after-decide", false}, {"crash-after-promote", false}, {"fail-promote", false},
    {"hang-after-decided", false}, {"hang-on-stop", false},
};

#define N_POINTS (sizeof points / sizeof points[0])

static int find(const char *name, size_t len)
{
    for (size_t i = 0; i < N_POINTS; i++) {
        if (strlen(points[i].name) == len && strncmp(points[i].name, name, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void set_armed(int i, bool armed, const char *how)
{
    if (points[i].armed != armed) {
        afc_notice("fault point %s %s (%s)", points[i].name, armed ? "armed" : "disarmed", how);
    }
    points[i].armed = armed;
}

bool afc_fault_hit(const char *name)
{
    int i = find(name, strlen(name));
    if (i < 0 || !points[i].armed) {
        return false;
    }
    points[i].armed = false; /* once per arming: a restarted process must not loop */
    afc_event("fault-point", "name=%s", name);
    return true;
}

int afc_fault_points_init(struct afc_err *err)
{
    const char *v = getenv("ARAGORA_FAULT_POINTS");
    bool arm[N_POINTS] = {false};
    if (v == NULL) {
        return 0;
    }
    for (const char *p = v; *p != '\0';) {
        size_t len = strcspn(p, ",");
        int i = find(p, len);
        if (len > 0 && i < 0) {
            return afc_err_set(err, AFC_ECONFIG,
                               "ARAGORA_FAULT_POINTS: unknown fault point '%.*s' (known: "
                               "crash-after-decide, crash-after-promote, fail-promote, "
                               "hang-after-decided, hang-on-stop)",
                               (int)len, p);
        }
        if (i >= 0) {
            arm[i] = true;
        }
        p += len + (p[len] == ',');
    }
    for (size_t i = 0; i < N_POINTS; i++) {
        if (arm[i]) {
            set_armed((int)i, true, "ARAGORA_FAULT_POINTS");
        }
    }
    return 0;
}

/* ---- POST /v1/test/fault-points ---- */

/* Check that `key` is absent or an array of known names; apply it only when `apply`. */
static const char *apply_list(json_t *body, const char *key, bool armed, bool apply)
{
    json_t *list = json_object_get(body, key), *item;
    size_t k;
    if (list == NULL) {
        return NULL;
    }
    if (!json_is_array(list)) {
        return "\"arm\" and \"disarm\" must be arrays of fault point names";
    }
    json_array_foreach(list, k, item)
    {
        const char *name = json_string_value(item);
        int i = name != NULL ? find(name, strlen(name)) : -1;
        if (i < 0) {
            return "unknown fault point (known: crash-after-decide, crash-after-promote, "
                   "fail-promote, hang-after-decided, hang-on-stop)";
        }
        if (apply) {
            set_armed(i, armed, "API");
        }
    }
    return NULL;
}

static json_t *armed_json(void)
{
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < N_POINTS; i++) {
        if (points[i].armed) {
            json_array_append_new(list, json_string(points[i].name));
        }
    }
    return json_pack("{s:o*}", "armed", list);
}

void afc_fault_points_api(struct http_req *r)
{
    if (!api_authorized(r)) {
        return;
    }
    size_t len;
    const char *text = http_req_body(r, &len);
    json_error_t jerr;
    json_t *body = len > 0 ? json_loadb(text, len, 0, &jerr) : json_object();
    const char *why = NULL;
    if (body == NULL || !json_is_object(body)) {
        why = "the body must be a JSON object {\"arm\":[...],\"disarm\":[...]}";
    } else if ((why = apply_list(body, "arm", true, false)) == NULL &&
               (why = apply_list(body, "disarm", false, false)) == NULL) {
        apply_list(body, "disarm", false, true);
        apply_list(body, "arm", true, true);
    }
    json_decref(body);
    if (why != NULL) {
        http_reply_error(r, 400, "bad_request", why);
        return;
    }
    http_reply_json(r, 200, armed_json());
}
