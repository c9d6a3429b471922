import { Button, Caption1, Subtitle2, Switch, Text, makeStyles, mergeClasses, tokens } from "@fluentui/react-components";
import { Suspense, type ReactNode } from "react";
import { NavLink, useLocation, useNavigate } from "react-router";
import { NAV, isCurrent } from "./navigation.js";
import { hasAny, useSession } from "./session.js";
import { Loading } from "./ui.js";

const useStyles = makeStyles({
  shell: { display: "grid", gridTemplateColumns: "220px 1fr", gridTemplateRows: "auto 1fr", minHeight: "100vh", backgroundColor: tokens.colorNeutralBackground2 },
  top: {
    gridColumn: "1 / 3",
    display: "flex",
    alignItems: "center",
    gap: tokens.spacingHorizontalM,
    padding: `${tokens.spacingVerticalS} ${tokens.spacingHorizontalL}`,
    backgroundColor: tokens.colorNeutralBackground1,
    borderBottom: `1px solid ${tokens.colorNeutralStroke2}`,
  },
  brand: { flexGrow: 1 },
  skip: {
    position: "absolute",
    left: "-10000px",
    ":focus": { left: tokens.spacingHorizontalM, top: tokens.spacingVerticalM, zIndex: 10, backgroundColor: tokens.colorNeutralBackground1, padding: tokens.spacingHorizontalS },
  },
  nav: { padding: tokens.spacingVerticalM, backgroundColor: tokens.colorNeutralBackground1, borderRight: `1px solid ${tokens.colorNeutralStroke2}` },
  group: { margin: `${tokens.spacingVerticalM} 0 ${tokens.spacingVerticalXS}`, color: tokens.colorNeutralForeground2 },
  list: { listStyle: "none", margin: 0, padding: 0 },
  link: {
    display: "block",
    padding: `${tokens.spacingVerticalXS} ${tokens.spacingHorizontalS}`,
    borderRadius: tokens.borderRadiusMedium,
    color: tokens.colorNeutralForeground1,
    textDecoration: "none",
    ":hover": { backgroundColor: tokens.colorNeutralBackground1Hover },
    ":focus-visible": { outline: `2px solid ${tokens.colorStrokeFocus2}` },
  },
  active: { backgroundColor: tokens.colorBrandBackground2, fontWeight: tokens.fontWeightSemibold },
  main: { padding: tokens.spacingHorizontalXXL, minWidth: 0 },
});

export function Layout({ dark, onDark, children }: { dark: boolean; onDark: (dark: boolean) => void; children: ReactNode }) {
  const s = useStyles();
  const { session, signOut } = useSession();
  const items = session ? NAV.filter((n) => hasAny(session, n.roles)) : [];
  const { pathname } = useLocation();
  const navigate = useNavigate();
  return (
    <div className={s.shell}>
      <a className={s.skip} href="#main">
        Skip to content
      </a>
      <header className={s.top}>
        <Subtitle2 className={s.brand}>aigov</Subtitle2>
        <Switch label="Dark theme" checked={dark} onChange={(_, d) => onDark(d.checked)} />
        {session ? (
          <>
            <Text>
              <span data-testid="signed-in-user">{session.user}</span> <Caption1>· {session.tenant} · {session.roles.join(", ") || "no tenant role"}</Caption1>
            </Text>
            {/* To the start page first: the next user signs in there, not on the last user's project. */}
            <Button
              onClick={() => {
                void navigate("/", { replace: true });
                void signOut();
              }}
            >
              Sign out
            </Button>
          </>
        ) : null}
      </header>
      <nav className={s.nav} aria-label="Main">
        {(["Operate", "Build"] as const).map((group) => (
          <div key={group}>
            <Caption1 as="h2" className={s.group}>
              {group}
            </Caption1>
            <ul className={s.list}>
              {items
                .filter((i) => i.group === group)
                .map((i) => (
                  <li key={i.path}>
                    <NavLink to={i.path} className={() => mergeClasses(s.link, isCurrent(i.path, pathname) && s.active)} aria-current={isCurrent(i.path, pathname) ? "page" : undefined}>
                      {i.label}
                    </NavLink>
                  </li>
                ))}
            </ul>
          </div>
        ))}
      </nav>
      <main id="main" className={s.main} tabIndex={-1}>
        <Suspense fallback={<Loading label="Loading screen" />}>{children}</Suspense>
      </main>
    </div>
  );
}

