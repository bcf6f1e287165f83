package disserver

import (
	"fmt"
	"net/http"
	"sort"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgegw/edgegw/internal/dis"
)

// Tag APIs (§5.7.1-5.7.5). Tags live in the stream's metadata; these APIs
// address the stream by its stream_id, not its name.

func errResourceNotFound(id string) error {
	return dis.NewError("DIS.4603", "The resource does not exist. stream_id %s", id)
}

// streamByID finds a stream of the project by its stream_id.
func (s *Server) streamByID(projectID, id string) (*stream, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p := s.projects[projectID]; p != nil {
		for _, st := range p.streams {
			if st.id == id {
				return st, nil
			}
		}
	}
	return nil, errResourceNotFound(id)
}

// updateTags applies fn to a copy of a stream's tags and persists the result.
func (s *Server) updateTags(c *call, fn func(tags []dis.Tag) ([]dis.Tag, error)) error {
	st, err := s.streamByID(c.project, c.seg[1])
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.deleted {
		return errResourceNotFound(c.seg[1])
	}
	tags, err := fn(append([]dis.Tag(nil), st.meta.Tags...))
	if err != nil {
		return err
	}
	if err := validateTags(tags, nil); err != nil {
		return err
	}
	next := st.meta
	next.Tags = tags
	next.LastModified = ms(s.now())
	if err := s.syncUpdate(func(txn *badger.Txn) error { return s.persistStream(txn, &next) }); err != nil {
		return fmt.Errorf("update tags of stream %s: %w", st.meta.Name, err)
	}
	st.meta = next
	return c.empty(http.StatusNoContent)
}

func setTag(tags []dis.Tag, t dis.Tag) []dis.Tag {
	for i := range tags {
		if tags[i].Key == t.Key {
			tags[i].Value = t.Value
			return tags
		}
	}
	return append(tags, t)
}

func removeTag(tags []dis.Tag, key string) ([]dis.Tag, bool) {
	for i := range tags {
		if tags[i].Key == key {
			return append(tags[:i], tags[i+1:]...), true
		}
	}
	return tags, false
}

// hCreateTag serves POST /v2/{project_id}/stream/{stream_id}/tags (§5.7.1);
// an existing key gets the new value.
func (s *Server) hCreateTag(c *call) error {
	var req dis.CreateTagRequest
	if err := decodeJSON(c.body, &req); err != nil {
		return err
	}
	if req.Tag == nil {
		return bodyError("tag", "is required")
	}
	return s.updateTags(c, func(tags []dis.Tag) ([]dis.Tag, error) { return setTag(tags, *req.Tag), nil })
}

// hStreamTags serves GET /v2/{project_id}/stream/{stream_id}/tags (§5.7.2).
func (s *Server) hStreamTags(c *call) error {
	st, err := s.streamByID(c.project, c.seg[1])
	if err != nil {
		return err
	}
	st.mu.RLock()
	resp := dis.StreamTagsResponse{Tags: append([]dis.Tag{}, st.meta.Tags...)}
	st.mu.RUnlock()
	return c.json(http.StatusOK, resp)
}

// hDeleteTag serves DELETE /v2/{project_id}/stream/{stream_id}/tags/{key} (§5.7.3).
func (s *Server) hDeleteTag(c *call) error {
	key := c.seg[3]
	return s.updateTags(c, func(tags []dis.Tag) ([]dis.Tag, error) {
		tags, ok := removeTag(tags, key)
		if !ok {
			return nil, dis.NewError("DIS.4604", "The key does not exist. %s", key)
		}
		return tags, nil
	})
}

// hBatchTags serves POST /v2/{project_id}/stream/{stream_id}/tags/action (§5.7.4).
func (s *Server) hBatchTags(c *call) error {
	var req dis.BatchTagsRequest
	if err := decodeJSON(c.body, &req); err != nil {
		return err
	}
	if req.Action != "create" && req.Action != "delete" {
		return dis.NewError("DIS.4605", "The action is not supported. %q; use create or delete", req.Action)
	}
	if len(req.Tags) == 0 {
		return bodyError("tags", "must hold at least one tag")
	}
	return s.updateTags(c, func(tags []dis.Tag) ([]dis.Tag, error) {
		for _, t := range req.Tags {
			if req.Action == "create" {
				tags = setTag(tags, t)
				continue
			}
			var ok bool
			if tags, ok = removeTag(tags, t.Key); !ok {
				return nil, dis.NewError("DIS.4604", "The key does not exist. %s", t.Key)
			}
		}
		return tags, nil
	})
}

// hListTags serves GET /v2/{project_id}/stream/tags (§5.7.5): every key used
// on the project's streams with its values.
func (s *Server) hListTags(c *call) error {
	values := map[string]map[string]bool{}
	s.mu.RLock()
	if p := s.projects[c.project]; p != nil {
		for _, st := range p.streams {
			st.mu.RLock()
			for _, t := range st.meta.Tags {
				if values[t.Key] == nil {
					values[t.Key] = map[string]bool{}
				}
				values[t.Key][t.Value] = true
			}
			st.mu.RUnlock()
		}
	}
	s.mu.RUnlock()
	resp := dis.ListTagsResponse{Tags: []dis.TagValues{}}
	for k, vs := range values {
		tv := dis.TagValues{Key: k, Values: []string{}}
		for v := range vs {
			tv.Values = append(tv.Values, v)
		}
		sort.Strings(tv.Values)
		resp.Tags = append(resp.Tags, tv)
	}
	sort.Slice(resp.Tags, func(i, j int) bool { return resp.Tags[i].Key < resp.Tags[j].Key })
	return c.json(http.StatusOK, resp)
}
