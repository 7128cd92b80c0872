/* layouts.c: offsetof()/sizeof() of the Xen structs in xen_abi.h, exported
 * as a table so Python's layouts can be checked against the compiler. */
#include <stddef.h>

#include "splitlock.h"
#include "xen_abi.h"

#define F(layout, type, member)                                               \
    {layout, #member, offsetof(type, member), sizeof(((type *)0)->member)}
#define WHOLE(layout, type) {layout, "", 0, sizeof(type)}

/* The fields both vcpu_info ABIs share, by name. */
#define VCPU_INFO_FIELDS(layout, type)                                        \
    WHOLE(layout, type),                                                      \
    F(layout, type, evtchn_upcall_pending),                                   \
    F(layout, type, evtchn_upcall_mask),                                      \
    F(layout, type, evtchn_pending_sel),                                      \
    F(layout, type, arch),                                                    \
    F(layout, type, arch.cr2),                                                \
    F(layout, type, arch.pad),                                                \
    F(layout, type, time),                                                    \
    F(layout, type, time.version),                                            \
    F(layout, type, time.pad0),                                               \
    F(layout, type, time.tsc_timestamp),                                      \
    F(layout, type, time.system_time),                                        \
    F(layout, type, time.tsc_to_system_mul),                                  \
    F(layout, type, time.tsc_shift),                                          \
    F(layout, type, time.flags),                                              \
    F(layout, type, time.pad)

#define SHARED_INFO_FIELDS(layout, type)                                      \
    F(layout, type, vcpu_info),                                               \
    F(layout, type, evtchn_pending),                                          \
    F(layout, type, evtchn_mask)

static const struct slp_field_info fields[] = {
    VCPU_INFO_FIELDS("vcpu_info", struct slp_xen_vcpu_info),
    VCPU_INFO_FIELDS("compat_vcpu_info", struct slp_xen_compat_vcpu_info),
    F("compat_vcpu_info", struct slp_xen_compat_vcpu_info, pad0),
    SHARED_INFO_FIELDS("shared_info", struct slp_xen_shared_info),
    SHARED_INFO_FIELDS("compat_shared_info", struct slp_xen_compat_shared_info),
};

size_t slp_layout_fields(const struct slp_field_info **out)
{
    if (out != NULL)
        *out = fields;
    return sizeof(fields) / sizeof(fields[0]);
}
