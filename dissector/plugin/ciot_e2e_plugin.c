/*
 * Wireshark plugin for the CIoT end-to-end security protocol of 3GPP
 * TR 33.863 as the ciot-e2e crate puts it on the wire (docs/wire-format.md).
 *
 * The plugin holds no protocol knowledge of its own: every field, finding,
 * display value and plaintext comes from the crate's analyzer through its
 * C ABI (crates/analyze-capi, include/ciot_e2e_analyze.h), the code
 * `ciot-e2e dissect` runs. The plugin registers the analyzer's field and
 * finding tables as header fields and expert infos, turns each message's
 * fields into the protocol tree and its findings into expert infos, and
 * adds the plaintext of a decrypted data message as a data source.
 *
 * Registered as "ciot_e2e" on UDP port 33863 (preference ciot_e2e.udp.port,
 * and Decode As) and on the USER0 link type. With the preference
 * ciot_e2e.keylog_file (docs/keylog.md) data messages are decrypted and
 * checked for nonce reuse across the capture.
 *
 * dissector/README.md says how to build and install it.
 */

#define WS_BUILD_DLL
#include <wireshark.h>
#include <epan/expert.h>
#include <epan/packet.h>
#include <epan/prefs.h>
#include <wiretap/wtap.h>
#include <ws_version.h>

#include "ciot_e2e_analyze.h"

#ifndef PLUGIN_VERSION
#define PLUGIN_VERSION "0.1.0"
#endif

#define CIOT_E2E_PORT 33863

WS_DLL_PUBLIC_DEF const gchar plugin_version[] = PLUGIN_VERSION;
WS_DLL_PUBLIC_DEF const int plugin_want_major = WIRESHARK_VERSION_MAJOR;
WS_DLL_PUBLIC_DEF const int plugin_want_minor = WIRESHARK_VERSION_MINOR;

WS_DLL_PUBLIC void plugin_register(void);

#if WIRESHARK_VERSION_MAJOR > 4 || (WIRESHARK_VERSION_MAJOR == 4 && WIRESHARK_VERSION_MINOR >= 2)
/* Wireshark 4.2 and later ask a plugin what it is (not built or tried
 * against them yet: dissector/README.md). */
#include <wsutil/plugins.h>
WS_DLL_PUBLIC uint32_t plugin_describe(void);
uint32_t plugin_describe(void)
{
    return WS_PLUGIN_DESC_DISSECTOR;
}
#endif

static int proto_ciot_e2e = -1;
static int ett_ciot_e2e = -1;
static dissector_handle_t ciot_e2e_handle;

/* One header field and one subtree per entry of the analyzer's field
 * table, one expert info per kind of finding (same index). */
static size_t n_fields;
static int *hf_fields;
static int *ett_fields;
static size_t n_kinds;
static expert_field *ei_kinds;
/* The key log preference is set but the file could not be read. */
static expert_field ei_keylog = EI_INIT;

/* Preference: the key log to decrypt with (empty: decode only). */
static const char *pref_keylog_file = "";

/* The key log read from the preference (NULL without one), why it could
 * not be read, the per-capture context (nonce reuse across frames) and the
 * result every message is dissected into. */
static ciot_e2e_an_keylog *keylog;
static char keylog_error[512];
static ciot_e2e_an_capture *capture;
static ciot_e2e_an_result *result;

/* (Re)reads the key log the preference names. */
static void load_keylog(void)
{
    ciot_e2e_an_keylog_free(keylog);
    keylog = NULL;
    keylog_error[0] = '\0';
    if (pref_keylog_file == NULL || pref_keylog_file[0] == '\0')
        return;
    if (ciot_e2e_an_keylog_open(pref_keylog_file, &keylog, keylog_error, sizeof keylog_error)
        != CIOT_E2E_AN_OK)
        keylog = NULL;
}

/* A new capture file (and every redissection): a fresh capture context,
 * and the key log read again, so keys appended since are used. */
static void ciot_e2e_init(void)
{
    ciot_e2e_an_capture_free(capture);
    capture = ciot_e2e_an_capture_new();
    load_keylog();
    /* The user_dlt dissector claims USER0 too, and again when its table
     * changes: USER0 frames are whole messages of this protocol. */
    dissector_add_uint("wtap_encap", WTAP_ENCAP_USER0, ciot_e2e_handle);
}

static void ciot_e2e_cleanup(void)
{
    ciot_e2e_an_capture_free(capture);
    capture = NULL;
}

/* Wireshark exits: nothing of the analyzer's is left behind. */
static void ciot_e2e_shutdown(void)
{
    ciot_e2e_an_result_free(result);
    result = NULL;
    ciot_e2e_an_keylog_free(keylog);
    keylog = NULL;
}

static void ciot_e2e_prefs_changed(void)
{
    load_keylog();
}

/* Adds one field of the result under `tree`. */
static proto_item *add_field(proto_tree *tree, tvbuff_t *tvb, const ciot_e2e_an_field *f,
                             const ciot_e2e_an_field_spec *spec)
{
    int hf = hf_fields[f->spec];
    gint offset = (gint)f->offset;
    gint length = (gint)f->length;
    proto_item *item = NULL;

    switch (f->ty) {
    case CIOT_E2E_AN_TYPE_UINT:
        if (spec->mask != 0 && f->raw_len == 1) {
            /* A bit field: Wireshark masks and shifts the octet itself. */
            item = proto_tree_add_uint_format_value(tree, hf, tvb, offset, length, f->raw[0], "%s",
                                                    f->display);
        } else if (spec->octets == 8) {
            item = proto_tree_add_uint64_format_value(tree, hf, tvb, offset, length, f->value, "%s",
                                                      f->display);
        } else {
            item = proto_tree_add_uint_format_value(tree, hf, tvb, offset, length,
                                                    (guint32)f->value, "%s", f->display);
        }
        break;
    case CIOT_E2E_AN_TYPE_BYTES:
        if (spec->generated && f->raw_len > 0) {
            /* The plaintext: over the protected payload, its own octets. */
            item = proto_tree_add_bytes_with_length(tree, hf, tvb, offset, length, f->raw,
                                                    (gint)f->raw_len);
        } else if (f->plain || f->raw_len == 0) {
            /* Octets of the message as they are (an empty plaintext is the
             * empty payload it lies over). */
            item = proto_tree_add_item(tree, hf, tvb, offset, length, ENC_NA);
        } else {
            item = proto_tree_add_bytes_format_value(tree, hf, tvb, offset, length, NULL, "%s",
                                                     f->display);
        }
        break;
    case CIOT_E2E_AN_TYPE_BOOL:
        item = proto_tree_add_boolean_format_value(tree, hf, tvb, offset, length,
                                                   (guint32)f->value, "%s", f->display);
        break;
    default:
        break;
    }
    if (item != NULL && spec->generated)
        proto_item_set_generated(item);
    return item;
}

static int dissect_ciot_e2e(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    guint len = tvb_captured_length(tvb);
    const guint8 *bytes = len > 0 ? tvb_get_ptr(tvb, 0, (gint)len) : NULL;
    /* A message quoted inside another packet (an ICMP error) is not a frame
     * of its own: frame 0 keeps it out of the capture's nonce ledger. */
    guint64 frame = pinfo->flags.in_error_pkt ? 0 : pinfo->num;
    ciot_e2e_an_summary s;

    col_set_str(pinfo->cinfo, COL_PROTOCOL, "CIOT_E2E");
    int rc = ciot_e2e_an_dissect(capture, keylog, bytes, len, frame, result);
    if (rc != CIOT_E2E_AN_OK || ciot_e2e_an_result_summary(result, &s) != CIOT_E2E_AN_OK) {
        col_add_fstr(pinfo->cinfo, COL_INFO, "analyzer failed: %s", ciot_e2e_an_error_name(rc));
        return (int)len;
    }
    col_add_fstr(pinfo->cinfo, COL_INFO, "%s%s%s", s.type_name,
                 s.tag_valid == 1 ? " (decrypted)" : "", s.malformed ? " [malformed]" : "");

    proto_item *root = proto_tree_add_item(tree, proto_ciot_e2e, tvb, 0, -1, ENC_NA);
    proto_tree *ptree = proto_item_add_subtree(root, ett_ciot_e2e);

    /* The analyzer's tree: a field's children follow it with depth + 1. */
    enum { MAX_DEPTH = 8 };
    proto_tree *at_depth[MAX_DEPTH + 1] = {ptree};
    for (size_t i = 0; i < s.field_count; i++) {
        ciot_e2e_an_field f;
        ciot_e2e_an_field_spec spec;
        if (ciot_e2e_an_result_field(result, i, &f) != CIOT_E2E_AN_OK || f.spec >= n_fields ||
            ciot_e2e_an_field_spec_at(f.spec, &spec) != CIOT_E2E_AN_OK || f.depth >= MAX_DEPTH)
            continue;
        proto_tree *parent = at_depth[f.depth] != NULL ? at_depth[f.depth] : ptree;
        proto_item *item = add_field(parent, tvb, &f, &spec);
        at_depth[f.depth + 1] =
            item != NULL ? proto_item_add_subtree(item, ett_fields[f.spec]) : NULL;
    }

    for (size_t i = 0; i < s.finding_count; i++) {
        ciot_e2e_an_finding x;
        if (ciot_e2e_an_result_finding(result, i, &x) != CIOT_E2E_AN_OK || x.kind >= n_kinds)
            continue;
        expert_add_info_format(pinfo, root, &ei_kinds[x.kind], "%s", x.message);
    }

    if (keylog_error[0] != '\0' && g_strcmp0(s.type_name, "data") == 0)
        expert_add_info_format(pinfo, root, &ei_keylog, "key log not read: %s", keylog_error);

    if (s.has_plaintext && s.plaintext_len > 0) {
        guint8 *copy = (guint8 *)wmem_memdup(pinfo->pool, s.plaintext, s.plaintext_len);
        tvbuff_t *plain = tvb_new_child_real_data(tvb, copy, (guint)s.plaintext_len,
                                                  (gint)s.plaintext_len);
        add_new_data_source(pinfo, plain, "Decrypted CIoT E2E payload");
    }
    return (int)len;
}

static int ws_group(uint8_t group)
{
    switch (group) {
    case CIOT_E2E_AN_GROUP_DECRYPTION:
        return PI_DECRYPTION;
    case CIOT_E2E_AN_GROUP_SECURITY:
        return PI_SECURITY;
    default:
        return PI_MALFORMED;
    }
}

static void proto_register_ciot_e2e(void)
{
    proto_ciot_e2e = proto_register_protocol("CIoT end-to-end security (TR 33.863)", "CIOT_E2E",
                                             "ciot_e2e");

    /* Header fields: the analyzer's table. */
    n_fields = ciot_e2e_an_field_spec_count();
    hf_fields = g_new(int, n_fields);
    ett_fields = g_new(int, n_fields);
    hf_register_info *hf = g_new0(hf_register_info, n_fields);
    gint **ett = g_new(gint *, n_fields + 1);
    size_t n_hf = 0;
    for (size_t i = 0; i < n_fields; i++) {
        ciot_e2e_an_field_spec spec;
        hf_fields[i] = -1;
        ett_fields[i] = -1;
        ett[i] = &ett_fields[i];
        if (ciot_e2e_an_field_spec_at(i, &spec) != CIOT_E2E_AN_OK)
            continue;
        header_field_info *h = &hf[n_hf].hfinfo;
        hf[n_hf].p_id = &hf_fields[i];
        h->name = spec.name;
        h->abbrev = spec.abbrev;
        h->strings = NULL;
        h->bitmask = spec.mask;
        h->blurb = NULL;
        switch (spec.ty) {
        case CIOT_E2E_AN_TYPE_UINT:
            h->type = spec.octets == 8 ? FT_UINT64 : spec.octets == 4 ? FT_UINT32 : FT_UINT8;
            h->display = spec.hex ? BASE_HEX : BASE_DEC;
            break;
        case CIOT_E2E_AN_TYPE_BOOL:
            h->type = FT_BOOLEAN;
            h->display = BASE_NONE;
            break;
        default:
            h->type = FT_BYTES;
            h->display = BASE_NONE;
            break;
        }
        HFILL_INIT(hf[n_hf]);
        n_hf++;
    }
    ett[n_fields] = &ett_ciot_e2e;
    proto_register_field_array(proto_ciot_e2e, hf, (int)n_hf);
    proto_register_subtree_array(ett, (int)n_fields + 1);

    /* Expert infos: one per kind of finding, ciot_e2e.expert.<kind>. */
    n_kinds = ciot_e2e_an_finding_kind_count();
    ei_kinds = g_new(expert_field, n_kinds);
    ei_register_info *ei = g_new0(ei_register_info, n_kinds + 1);
    size_t n_ei = 0;
    for (size_t i = 0; i < n_kinds; i++) {
        ciot_e2e_an_finding_kind kind;
        ei_kinds[i].ei = EI_INIT_EI;
        ei_kinds[i].hf = EI_INIT_HF;
        if (ciot_e2e_an_finding_kind_at(i, &kind) != CIOT_E2E_AN_OK)
            continue;
        /* EXPFILL fills the rest, whatever this Wireshark's structure. */
        ei_register_info info = {
            &ei_kinds[i],
            {g_strdup_printf("ciot_e2e.expert.%s", kind.name), ws_group(kind.group),
             kind.severity == CIOT_E2E_AN_SEVERITY_ERROR ? PI_ERROR : PI_NOTE, kind.title,
             EXPFILL}};
        ei[n_ei++] = info;
    }
    ei_register_info keylog_info = {&ei_keylog,
                                    {"ciot_e2e.expert.keylog", PI_DECRYPTION, PI_WARN,
                                     "The key log file could not be read", EXPFILL}};
    ei[n_ei++] = keylog_info;
    expert_module_t *expert = expert_register_protocol(proto_ciot_e2e);
    expert_register_field_array(expert, ei, (int)n_ei);

    module_t *prefs = prefs_register_protocol(proto_ciot_e2e, ciot_e2e_prefs_changed);
    prefs_register_filename_preference(
        prefs, "keylog_file", "Key log file",
        "A ciot-e2e key log (docs/keylog.md): data messages under its keysets are decrypted and "
        "checked for nonce reuse. SECRET: it decrypts the traffic it covers.",
        &pref_keylog_file, FALSE);

    ciot_e2e_handle = register_dissector("ciot_e2e", dissect_ciot_e2e, proto_ciot_e2e);
    result = ciot_e2e_an_result_new();
    register_init_routine(ciot_e2e_init);
    register_cleanup_routine(ciot_e2e_cleanup);
    register_shutdown_routine(ciot_e2e_shutdown);
}

static void proto_reg_handoff_ciot_e2e(void)
{
    dissector_add_uint_with_preference("udp.port", CIOT_E2E_PORT, ciot_e2e_handle);
    dissector_add_uint("wtap_encap", WTAP_ENCAP_USER0, ciot_e2e_handle);
}

void plugin_register(void)
{
    static proto_plugin plugin;
    plugin.register_protoinfo = proto_register_ciot_e2e;
    plugin.register_handoff = proto_reg_handoff_ciot_e2e;
    proto_register_plugin(&plugin);
}
