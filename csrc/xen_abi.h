/* xen_abi.h: the Xen guest ABI structs the scan models, written out with
 * fixed-width types as xen/include/public/xen.h, arch-x86/xen-x86_64.h and
 * the compat (32-bit guest) translation define them. The compiler's
 * offsetof() of these is what tests hold layouts.py against. */
#ifndef SLP_XEN_ABI_H
#define SLP_XEN_ABI_H

#include <stdint.h>

/* struct vcpu_time_info (pvclock_vcpu_time_info): 32 bytes, both ABIs. */
struct slp_xen_vcpu_time_info {
    uint32_t version;
    uint32_t pad0;
    uint64_t tsc_timestamp;
    uint64_t system_time;
    uint32_t tsc_to_system_mul;
    int8_t tsc_shift;
    uint8_t flags;
    uint8_t pad[2];
} __attribute__((packed));

/* 64-bit guest: xen_ulong_t is 8 bytes, arch_vcpu_info is cr2 + pad. */
struct slp_xen_arch_vcpu_info {
    uint64_t cr2;
    uint64_t pad;
};

struct slp_xen_vcpu_info {
    uint8_t evtchn_upcall_pending;
    uint8_t evtchn_upcall_mask;
    uint64_t evtchn_pending_sel;
    struct slp_xen_arch_vcpu_info arch;
    struct slp_xen_vcpu_time_info time;
};

/* 32-bit (compat) guest: xen_ulong_t is 4 bytes, arch is cr2 + pad[5]. */
struct slp_xen_compat_arch_vcpu_info {
    uint32_t cr2;
    uint32_t pad[5];
};

struct slp_xen_compat_vcpu_info {
    uint8_t evtchn_upcall_pending;
    uint8_t evtchn_upcall_mask;
    uint16_t pad0;
    uint32_t evtchn_pending_sel;
    struct slp_xen_compat_arch_vcpu_info arch;
    struct slp_xen_vcpu_time_info time;
};

/* shared_info: 32 legacy vcpu_info slots, then the event-channel bitmaps. */
#define SLP_XEN_LEGACY_MAX_VCPUS 32

struct slp_xen_shared_info {
    struct slp_xen_vcpu_info vcpu_info[SLP_XEN_LEGACY_MAX_VCPUS];
    uint64_t evtchn_pending[64];
    uint64_t evtchn_mask[64];
};

struct slp_xen_compat_shared_info {
    struct slp_xen_compat_vcpu_info vcpu_info[SLP_XEN_LEGACY_MAX_VCPUS];
    uint32_t evtchn_pending[32];
    uint32_t evtchn_mask[32];
};

#endif
