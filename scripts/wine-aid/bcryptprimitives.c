/* A test aid, never shipped: a stand-in for Windows' bcryptprimitives.dll,
   which Debian's Wine 8 lacks. Rust >= 1.78's std imports ProcessPrng from
   it (HashMap keys and the like), so without it every Rust program exits at
   load under that Wine (status 53, DLL not found) before printing anything.
   Forwards to RtlGenRandom (advapi32!SystemFunction036). scripts/windows.sh
   builds it with mingw and puts it on WINEPATH. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE; /* the real ProcessPrng always returns TRUE */
}
