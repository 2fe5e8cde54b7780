# aloop's own configure macros.

# ALOOP_ADD_CFLAG(VAR, FLAG): append FLAG to VAR if the C compiler accepts it (with -Werror, so
# that a flag that only warns is not taken).
AC_DEFUN([ALOOP_ADD_CFLAG], [
  AS_VAR_PUSHDEF([cache], [aloop_cv_cflag_$2])
  AC_CACHE_CHECK([whether $CC accepts $2], [cache], [
    aloop_save_CFLAGS=$CFLAGS
    aloop_save_LDFLAGS=$LDFLAGS
    CFLAGS="$CFLAGS -Werror $2"
    LDFLAGS="$LDFLAGS $2"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([], [])], [AS_VAR_SET([cache], [yes])], [AS_VAR_SET([cache], [no])])
    CFLAGS=$aloop_save_CFLAGS
    LDFLAGS=$aloop_save_LDFLAGS
  ])
  AS_VAR_IF([cache], [yes], [$1="$$1 $2"])
  AS_VAR_POPDEF([cache])
])

# AX_PTHREAD_SIMPLE: glibc 2.34+ has pthreads in libc; older ones need -pthread.
AC_DEFUN([AX_PTHREAD_SIMPLE], [
  AC_SEARCH_LIBS([pthread_create], [pthread], [], [AC_MSG_ERROR([POSIX threads are required])])
])

# ALOOP_OPTIONAL_DRIVER(NAME, LIB, HEADER, FUNCTION, VAR, [PKG-CONFIG-MODULE])
# --with-NAME / --without-NAME (default: use it if found). Looks with pkg-config when a module name
# is given, else with a header and link test. Sets VAR_CFLAGS, VAR_LIBS, have_NAME, the automake
# conditional HAVE_VAR and the define ALOOP_HAVE_VAR. --with-NAME=yes fails if it is missing.
AC_DEFUN([ALOOP_OPTIONAL_DRIVER], [
  AC_ARG_WITH([$1], [AS_HELP_STRING([--with-$1], [build the $1 driver (default: if found)])],
              [], [with_$1=check])
  have_$1=no
  AS_IF([test "x$with_$1" != xno], [
    m4_ifval([$6], [
      PKG_CHECK_MODULES([$5], [$6], [have_$1=yes], [have_$1=no])
    ], [
      aloop_save_LIBS=$LIBS
      AC_CHECK_HEADER([$3], [
        AC_SEARCH_LIBS([$4], [$2], [have_$1=yes
          $5_LIBS="-l$2"])
      ])
      LIBS=$aloop_save_LIBS
      AC_SUBST([$5_LIBS])
      AC_SUBST([$5_CFLAGS])
    ])
    AS_IF([test "x$with_$1" = xyes && test "x$have_$1" != xyes],
          [AC_MSG_ERROR([--with-$1 was given but $1 was not found (Debian: apt-get install $1-dev)])])
  ])
  AS_IF([test "x$have_$1" = xyes], [AC_DEFINE([ALOOP_HAVE_$5], [1], [Build the $1 driver])])
  AM_CONDITIONAL([HAVE_$5], [test "x$have_$1" = xyes])
])
