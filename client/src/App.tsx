import { EventFlow } from './components/EventFlow';
import { PostCreate } from './components/PostCreate';
import { PostList } from './components/PostList';
import { useLivePosts } from './useLivePosts';

/** The course's page, as it is; the event-flow panel comes after it. */
export default function App() {
  const { posts, events, status, loadError, refresh } = useLivePosts();
  const changed = () => void refresh();
  return (
    <div className="container">
      <h1>Create Post</h1>
      <PostCreate onCreated={changed} />
      <hr />
      <h1>Posts</h1>
      <PostList posts={posts} loadError={loadError} onChanged={changed} />
      <hr />
      <EventFlow events={events} status={status} />
    </div>
  );
}
