/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The wire protocol, defined once for daemon and client. */
#pragma once

#define BPFCORED_VERSION "0.1.0"
#define BPFCORED_INTERFACE "io.bpfcored"
#define BPFCORED_DEFAULT_SOCKET "/run/bpfcored/io.bpfcored"
#define BPFCORED_SOCKET_ENV "BPFCORED_SOCKET"

/* Limits of design.md: past one, an error reply and the connection closes. */
#define VL_MAX_MESSAGE (16u * 1024 * 1024)
/* What a reply adds around its payload ({"parameters":{"entries":…,"count":N},"continues":true}): a payload
 * of up to VL_MAX_MESSAGE - VL_REPLY_ENVELOPE bytes fits in one message. */
#define VL_REPLY_ENVELOPE 64u
#define VL_MAX_OBJECT (64u * 1024 * 1024)
#define VL_MAX_FDS 16u
#define VL_MAX_JSON_DEPTH 64

#define VL_METHOD(m) BPFCORED_INTERFACE "." m

#define VL_ERROR_INVALID_OBJECT "io.bpfcored.InvalidObject"
#define VL_ERROR_VERIFIER_REJECTED "io.bpfcored.VerifierRejected"
#define VL_ERROR_RELOCATION_FAILED "io.bpfcored.RelocationFailed"
#define VL_ERROR_ATTACH_FAILED "io.bpfcored.AttachFailed"
#define VL_ERROR_NO_SUCH_OBJECT "io.bpfcored.NoSuchObject"
#define VL_ERROR_NO_SUCH_PROGRAM "io.bpfcored.NoSuchProgram"
#define VL_ERROR_NO_SUCH_MAP "io.bpfcored.NoSuchMap"
#define VL_ERROR_PERMISSION_DENIED "io.bpfcored.PermissionDenied"
#define VL_ERROR_QUOTA_EXCEEDED "io.bpfcored.QuotaExceeded"
#define VL_ERROR_INVALID_PARAMETER "io.bpfcored.InvalidParameter"
#define VL_ERROR_NOT_SUPPORTED "io.bpfcored.NotSupported"
#define VL_ERROR_TOO_LARGE "io.bpfcored.TooLarge"
#define VL_ERROR_SYSTEM "io.bpfcored.SystemError"

#define VL_SERVICE_INTERFACE "org.varlink.service"
#define VL_ERROR_METHOD_NOT_FOUND "org.varlink.service.MethodNotFound"
#define VL_ERROR_INTERFACE_NOT_FOUND "org.varlink.service.InterfaceNotFound"
#define VL_ERROR_VARLINK_INVALID_PARAMETER "org.varlink.service.InvalidParameter"
#define VL_ERROR_EXPECTED_MORE "org.varlink.service.ExpectedMore"

/* proto/io.bpfcored.varlink, verbatim (generated at build time). */
extern const char bpfcored_interface_description[];
