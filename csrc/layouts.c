/* layouts.c: offsetof()/sizeof() of the Xen structs in xen_abi.h, exported
 * as a table so Python's layouts can be checked against the compiler. */
#include <stddef.h>

#include "splitlock.h"
#include "xen_abi.h"

#define F(layout, type, member)                                               \
    {layout, #member, offsetof(type, member), sizeof(((type *)0)->member)}
#define WHOLE(layout, type) {layout, "", 0, sizeof(type)}

static const struct slp_field_info fields[] = {
    WHOLE("vcpu_info", struct slp_xen_vcpu_info),
    F("vcpu_info", struct slp_xen_vcpu_info, evtchn_upcall_pending),
    F("vcpu_info", struct slp_xen_vcpu_info, evtchn_upcall_mask),
    F("vcpu_info", struct slp_xen_vcpu_info, evtchn_pending_sel),
    F("vcpu_info", struct slp_xen_vcpu_info, arch),
    F("vcpu_info", struct slp_xen_vcpu_info, arch.cr2),
    F("vcpu_info", struct slp_xen_vcpu_info, arch.pad),
    F("vcpu_info", struct slp_xen_vcpu_info, time),
    F("vcpu_info", struct slp_xen_vcpu_info, time.version),
    F("vcpu_info", struct slp_xen_vcpu_info, time.pad0),
    F("vcpu_info", struct slp_xen_vcpu_info, time.tsc_timestamp),
    F("vcpu_info", struct slp_xen_vcpu_info, time.system_time),
    F("vcpu_info", struct slp_xen_vcpu_info, time.tsc_to_system_mul),
    F("vcpu_info", struct slp_xen_vcpu_info, time.tsc_shift),
    F("vcpu_info", struct slp_xen_vcpu_info, time.flags),
    F("vcpu_info", struct slp_xen_vcpu_info, time.pad),
    WHOLE("compat_vcpu_info", struct slp_xen_compat_vcpu_info),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, evtchn_upcall_pending),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, evtchn_upcall_mask),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, pad0),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, evtchn_pending_sel),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, arch),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, arch.cr2),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, arch.pad),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, time),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, time.version),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, time.pad0),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, time.tsc_timestamp),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, time.system_time),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, time.tsc_to_system_mul),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, time.tsc_shift),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, time.flags),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, time.pad),
    F("shared_info", struct slp_xen_shared_info, vcpu_info),
    F("shared_info", struct slp_xen_shared_info, evtchn_pending),
    F("shared_info", struct slp_xen_shared_info, evtchn_mask),
    F("compat_shared_info", struct slp_xen_compat_shared_info, vcpu_info),
    F("compat_shared_info", struct slp_xen_compat_shared_info, evtchn_pending),
    F("compat_shared_info", struct slp_xen_compat_shared_info, evtchn_mask),
};

size_t slp_layout_fields(const struct slp_field_info **out)
{
    if (out != NULL)
        *out = fields;
    return sizeof(fields) / sizeof(fields[0]);
}
