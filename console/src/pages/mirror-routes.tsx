// Mirror routes (admins), once the server offers them (/api/v1/mirror_routes): the console lists what
// the API returns and says so when this server has none.
import { ApiError, get } from '../api.ts';
import { Loading, Section, useLoad } from '../ui.tsx';

type Route = Record<string, unknown> & { id: number };

export function MirrorRoutesPage() {
  const routes = useLoad(async () => {
    try {
      return await get<Route[]>('/mirror_routes?per_page=100');
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
  });
  return (
    <>
      <h1>Mirror routes</h1>
      <Section title="Routes">
        {routes.data === undefined ? <Loading error={routes.error} /> : routes.data === null ? (
          <p>This server has no mirror routes API yet.</p>
        ) : routes.data.length === 0 ? <p>No mirror routes.</p> : (
          <div class="table-wrap"><table>
            <thead><tr>{Object.keys(routes.data[0]).map((key) => <th key={key} scope="col">{key}</th>)}</tr></thead>
            <tbody>{routes.data.map((route) => <tr key={route.id}>{Object.values(route).map((value, i) => <td key={i}>{typeof value === 'object' ? JSON.stringify(value) : String(value)}</td>)}</tr>)}</tbody>
          </table></div>
        )}
      </Section>
    </>
  );
}
